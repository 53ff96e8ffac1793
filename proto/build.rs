//! Compiles `smon/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "smon/v1/agent.proto",
        "smon/v1/snapshot.proto",
        "smon/v1/control.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    // The service's client and server only with the `grpc` feature: smon-api takes the
    // messages alone.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // The messages double as the JSON shape of `smon-agent --once --json`: one definition
        // of what a host reports. Deserialize: the typed REST client (smon-api) reads them back.
        .type_attribute(
            ".smon.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        // Fields appended after the first release: JSON written by an older agent or server
        // (without them) still reads back.
        .field_attribute(".smon.v1.Process.kernel_thread", "#[serde(default)]")
        .field_attribute(".smon.v1.Process.program", "#[serde(default)]")
        .field_attribute(".smon.v1.Snapshot.programs", "#[serde(default)]")
        .field_attribute(".smon.v1.Snapshot.containers", "#[serde(default)]")
        .field_attribute(".smon.v1.Process.container", "#[serde(default)]")
        .field_attribute(".smon.v1.Program.cpu_percent", "#[serde(default)]")
        .field_attribute(".smon.v1.Program.memory_bytes", "#[serde(default)]")
        .compile_fds(fds)?;
    Ok(())
}
