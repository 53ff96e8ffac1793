//! Compiles `smon/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["smon/v1/agent.proto", "smon/v1/snapshot.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        // The messages double as the JSON shape of `smon-agent --once --json`: one definition
        // of what a host reports. Deserialize: the typed REST client (smon-api) reads them back.
        .type_attribute(
            ".smon.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .compile_fds(fds)?;
    Ok(())
}
