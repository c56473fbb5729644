//! `fabrikam dev`: the whole system on this machine, embedded queue and stores.
//! `fabrikam manifests`: the Kubernetes and KEDA manifests of an environment.

use std::path::PathBuf;
use std::process::ExitCode;

use host::manifests;
use runtime::deploy::Profile;

use runtime::config::ProcessEnv;
use runtime::lifecycle::{Shutdown, shutdown_on_signals};
use runtime::telemetry::init_telemetry;
use runtime::telemetry::startup::mark_process_start;

const USAGE: &str = "usage: fabrikam dev
       fabrikam manifests --profile dev|prod [--input FILE] [--out DIR] [--check]
                          [--declaration FILE]...

  dev          run all five functions and the gateway locally on embedded defaults
  manifests    render the functions' declarations into Kubernetes and KEDA objects:
               --input defaults to keda/input/PROFILE.json, --out to keda/PROFILE;
               --check writes nothing and fails if the folder differs;
               --declaration replaces a function's declaration with one read from JSON
";

fn main() -> ExitCode {
    mark_process_start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("dev") => dev(),
        Some("manifests") => manifests(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("fabrikam: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn dev() -> ExitCode {
    let config = match host::DevConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fabrikam: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept until the async runtime is gone, so the last spans are exported.
    let _telemetry = init_telemetry(
        config.host.log_format,
        config.host.otlp.as_ref(),
        "fabrikam-dev",
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fabrikam: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        match host::start_dev(config, shutdown).await {
            Ok(system) => {
                system.stopped().await;
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("fabrikam: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn manifests(args: &[String]) -> ExitCode {
    let usage = |problem: &str| {
        eprint!("fabrikam manifests: {problem}\n\n{USAGE}");
        ExitCode::from(2)
    };
    let (mut profile, mut input, mut out, mut check) = (None, None, None, false);
    let mut replacements = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--profile" | "--input" | "--out" | "--declaration" => {
                let Some(value) = args.next() else {
                    return usage(&format!("{arg} needs a value"));
                };
                match arg.as_str() {
                    "--profile" => profile = Some(value.clone()),
                    "--input" => input = Some(PathBuf::from(value)),
                    "--declaration" => replacements.push(PathBuf::from(value)),
                    _ => out = Some(PathBuf::from(value)),
                }
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(profile) = profile.as_deref().and_then(Profile::parse) else {
        return usage("--profile must be dev or prod");
    };
    let input = input.unwrap_or_else(|| format!("keda/input/{}.json", profile.name()).into());
    let out = out.unwrap_or_else(|| format!("keda/{}", profile.name()).into());
    let rendered = manifests::read_input(&input).and_then(|env| {
        let mut functions = manifests::declarations();
        for path in &replacements {
            manifests::replace_declaration(&mut functions, manifests::read_declaration(path)?);
        }
        manifests::render(profile, &functions, &env)
    });
    let files = match rendered {
        Ok(files) => files,
        Err(e) => {
            eprintln!("fabrikam manifests: cannot generate:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let differences = manifests::differences(&files, &out);
        if differences.is_empty() {
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "fabrikam manifests: {} is not what the declarations give (run `fabrikam manifests --profile {}`):\n{}",
            out.display(),
            profile.name(),
            differences.join("\n")
        );
        return ExitCode::FAILURE;
    }
    match manifests::write(&files, &out) {
        Ok(()) => {
            println!("wrote {} files to {}", files.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fabrikam manifests: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
