//! The redactor, on any command line: it never panics, redacting twice changes nothing, and a
//! secret planted under a known key never comes out.
//!
//! The input is arbitrary arguments, a shape number and secret bytes. The secret (letters and
//! digits, 6 or more) is planted in the shape among the arguments; the line is redacted once
//! with that secret and once with another of the same length. A leak of any of its characters
//! makes the two outputs differ.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smon_collect::Redactor;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The forms the redactor promises to hide, `§` standing for the secret. A leading `curl`
/// puts the program in front.
const SHAPES: &[&[&str]] = &[
    &["--password", "§"],
    &["--password=§"],
    &["-token", "§"],
    &["--db-password\t§"],
    &["PASSWORD=§"],
    &["host=db password=§ dbname=x"],
    &["https://x.example/a?access_token=§&page=2"],
    &["https://bob:§@git.example/r.git"],
    &["-H", "Authorization: Bearer §"],
    &["-H", "authorization: Basic §"],
    &["Bearer §"],
    &["Bearer", "§"],
    &["-H", "X-API-Key: §"],
    &["password:§"],
    &["pass:§"],
    &[r#"{"password":"§"}"#],
    &[r#"{"user": "bob", "api_key": "§"}"#],
    &["{'client_secret': '§'}"],
    &["ＰＡＳＳＷＯＲＤ=§"],
    &["--ｔｏｋｅｎ", "§"],
    &["pass\u{200b}word=§"],
    &["-c", "app --password § --port 1"],
    &["-c", "curl -u bob:§ https://x.example/"],
    &["curl", "-u", "bob:§"],
    &["curl", "--user=bob:§"],
];

fn plant(shape: &[&str], secret: &str, noise: &[String], at: usize) -> Vec<String> {
    let curl = shape.first() == Some(&"curl");
    let shape = if curl { &shape[1..] } else { shape };
    let at = at.min(noise.len());
    let mut args: Vec<String> = Vec::new();
    if curl {
        args.push("curl".to_owned());
    }
    args.extend(noise[..at].iter().cloned());
    args.extend(shape.iter().map(|a| a.replace('§', secret)));
    args.extend(noise[at..].iter().cloned());
    args
}

fuzz_target!(|input: (Vec<String>, u8, u8, Vec<u8>)| {
    let (noise, shape, at, secret) = input;
    let red = Redactor::default();

    // Any arguments: no panic, and a second pass changes nothing.
    let out = red.redact_args(&noise);
    for a in &noise {
        let once = red.redact_text(a).into_owned();
        assert_eq!(red.redact_text(&once), once.as_str(), "text {a:?}");
    }
    let _ = out;

    // A planted secret: the output does not depend on it.
    if secret.len() < 6 {
        return;
    }
    let a: String = secret
        .iter()
        .map(|b| ALNUM[usize::from(*b) % ALNUM.len()] as char)
        .collect();
    let b: String = secret
        .iter()
        .map(|b| ALNUM[(usize::from(*b) + 1) % ALNUM.len()] as char)
        .collect();
    let shape = SHAPES[usize::from(shape) % SHAPES.len()];
    let with_a = red.redact_args(&plant(shape, &a, &noise, usize::from(at)));
    let with_b = red.redact_args(&plant(shape, &b, &noise, usize::from(at)));
    assert_eq!(
        with_a, with_b,
        "the secret leaks: shape {shape:?}, noise {noise:?}"
    );
});
