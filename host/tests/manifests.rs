//! `fabrikam manifests`: keda/ is exactly what the declarations give, broken declarations
//! fail with messages naming the problem, and each declaration matches its function's code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use host::manifests::{self, declarations};
use runtime::deploy::{Deployment, Profile};
use runtime::queue::QueueSettings;
use runtime::queue::embedded::EmbeddedBroker;
use runtime::telemetry::Metrics;
use runtime::{Bindings, EnvReader, MapEnv};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `fabrikam` with `args`, expecting it to fail with status 1; its stderr.
fn fabrikam_fails(args: &[&str]) -> String {
    let run = fabrikam(args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
    stderr
}

fn fabrikam(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fabrikam"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

#[test]
fn keda_is_what_the_declarations_give() {
    for profile in Profile::ALL {
        let input = repo().join(format!("keda/input/{}.json", profile.name()));
        let env = manifests::read_input(&input).unwrap();
        let files = manifests::render(profile, &declarations(), &env).unwrap();
        let differences = manifests::differences(&files, &repo().join("keda").join(profile.name()));
        assert!(
            differences.is_empty(),
            "keda/{} drifted from the declarations; run `cargo run -p host -- manifests --profile {}`:\n{}",
            profile.name(),
            profile.name(),
            differences.join("\n")
        );
    }
}

#[test]
fn check_reports_a_hand_edited_file_and_a_stray_one() {
    let dir = std::env::temp_dir().join(runtime::testing::servers::unique_name("keda"));
    let out = dir.to_str().unwrap();
    assert!(
        fabrikam(&["manifests", "--profile", "dev", "--out", out])
            .status
            .success()
    );
    assert!(
        fabrikam(&["manifests", "--profile", "dev", "--out", out, "--check"])
            .status
            .success()
    );
    let workflow = dir.join("workflow.yaml");
    let edited = std::fs::read_to_string(&workflow)
        .unwrap()
        .replace("maxReplicaCount: 3", "maxReplicaCount: 30");
    std::fs::write(&workflow, edited).unwrap();
    std::fs::write(dir.join("extra.yaml"), "kind: ConfigMap\n").unwrap();
    let check = fabrikam(&["manifests", "--profile", "dev", "--out", out, "--check"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("workflow.yaml differs"), "{stderr}");
    assert!(stderr.contains("extra.yaml is not generated"), "{stderr}");
    // Generating again puts the folder back and removes what is not generated.
    assert!(
        fabrikam(&["manifests", "--profile", "dev", "--out", out])
            .status
            .success()
    );
    assert!(!dir.join("extra.yaml").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each fixture, and what the error must say.
const BROKEN: &[(&str, &[&str])] = &[
    (
        "missing-secret.json",
        &["delivery: output redis needs the secret \"Redis-AccessKey\""],
    ),
    (
        "min-above-max.json",
        &["package: scaling.prod: min 3 is above max 1"],
    ),
    (
        "unknown-trigger.json",
        &[
            "unknown-trigger.json",
            "unknown variant `timer`",
            "expected `http` or `queue`",
        ],
    ),
];

#[test]
fn every_broken_declaration_fails_generation_with_a_clear_message() {
    let folder = repo().join("host/tests/fixtures/broken-declarations");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<&str> = BROKEN.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(names, expected, "every fixture needs its expected message");

    for (name, needles) in BROKEN {
        let path = folder.join(name);
        let dir = std::env::temp_dir().join(runtime::testing::servers::unique_name("broken"));
        let run = fabrikam(&[
            "manifests",
            "--profile",
            "dev",
            "--declaration",
            path.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{name}: {stderr}");
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{name}: {needle:?} missing from {stderr}"
            );
        }
        assert!(
            !dir.exists(),
            "{name}: nothing is written when generation fails"
        );
    }
}

#[test]
fn bad_arguments_and_bad_input_are_refused() {
    let run = fabrikam(&["manifests", "--profile", "staging"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("dev or prod"));

    let dir = std::env::temp_dir().join(runtime::testing::servers::unique_name("input"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("keda/input/dev.json")).unwrap())
            .unwrap();
    input["imageTag"] = "latest".into();
    input["functions"]
        .as_object_mut()
        .unwrap()
        .remove("package");
    let path = dir.join("input.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let stderr = fabrikam_fails(&[
        "manifests",
        "--profile",
        "dev",
        "--input",
        path.to_str().unwrap(),
        "--check",
    ]);
    assert!(stderr.contains("imageTag must name a release"), "{stderr}");
    assert!(stderr.contains("functions.package is missing"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_scale_run_refuses_a_callee_that_no_function_calls() {
    let stderr = fabrikam_fails(&["scale", "run", "--callee", "ingestion=http://127.0.0.1:1"]);
    assert!(
        stderr.contains("--callee ingestion: no registered function calls ingestion"),
        "{stderr}"
    );
    let run = fabrikam(&["scale", "run", "--callee", "delivery"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("is not FUNCTION=URL"));
}

/// Builds each registered function on embedded defaults and checks its declaration against
/// what it serves. (`runtime::start` refuses a function that breaks these; this shows it
/// for every registered one without starting it.)
#[tokio::test]
async fn each_declaration_matches_what_its_function_serves() {
    for function in host::functions() {
        let declared: Deployment = function.deployment();
        let name = function.name();
        assert_eq!(declared.name, name);
        for output in &declared.outputs {
            if let runtime::deploy::Output::Redis { secret }
            | runtime::deploy::Output::MongoDb { secret } = output
            {
                assert!(declared.secrets.contains(secret), "{name}: secrets");
            }
        }
        let env = MapEnv::new();
        let mut reader = EnvReader::new(&env);
        let config = function.read_config(&mut reader);
        reader.finish().unwrap();
        let bindings = Bindings::new(
            declared.clone(),
            config.wiring.clone(),
            Arc::new(EmbeddedBroker::new(QueueSettings::default())),
            Metrics::new(name).unwrap(),
        );
        let app = function.build(config, &bindings).await.unwrap();
        assert_eq!(
            app.has_queue_handler(),
            declared.queue_trigger().is_some(),
            "{name}: queue trigger"
        );
        let prefixes = declared
            .http_trigger()
            .map(|(p, _)| p.to_vec())
            .unwrap_or_default();
        for route in app.route_templates() {
            assert!(
                prefixes
                    .iter()
                    .any(|p| route == p || route.starts_with(&format!("{p}/"))),
                "{name}: route {route} is outside the declared prefixes {prefixes:?}"
            );
        }
        assert_eq!(
            app.route_templates().is_empty(),
            prefixes.is_empty(),
            "{name}: declares an http trigger exactly when it serves routes"
        );
    }
}

/// A catalog as `fabrikam images` writes it, with one entry per `functions`.
fn catalog(functions: &[&str]) -> host::images::Catalog {
    host::images::Catalog {
        images: functions
            .iter()
            .enumerate()
            .map(|(i, f)| host::images::CatalogEntry {
                function: (*f).to_owned(),
                name: host::images::image_name(f),
                tag: "sha-0123456789ab".to_owned(),
                digest: format!("sha256:{i:064x}"),
                compressed_size: 1,
                layers: Vec::new(),
                layout: (*f).to_owned(),
                archive: format!("{f}.tar"),
                sbom: format!("{f}.cdx.json"),
                sbom_digest: format!("sha256:{:064x}", 0),
            })
            .collect(),
    }
}

#[test]
fn pinned_images_name_every_deployment_by_the_digest_that_was_built() {
    let dir = std::env::temp_dir().join(runtime::testing::servers::unique_name("pinned"));
    std::fs::create_dir_all(&dir).unwrap();
    let names: Vec<String> = declarations().into_iter().map(|d| d.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let images = dir.join("images.json");
    catalog(&names).write(&images).unwrap();
    let out = dir.join("dev");
    let run = fabrikam(&[
        "manifests",
        "--profile",
        "dev",
        "--images",
        images.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (i, name) in names.iter().enumerate() {
        let yaml = std::fs::read_to_string(out.join(format!("{name}.yaml"))).unwrap();
        let expected = format!(
            "image: fabrikamdevacr.azurecr.io/fabrikam-{name}:sha-0123456789ab@sha256:{i:064x}"
        );
        assert!(yaml.contains(&expected), "{name}: {expected} missing");
    }

    catalog(&names[..names.len() - 1]).write(&images).unwrap();
    let stderr = fabrikam_fails(&[
        "manifests",
        "--profile",
        "dev",
        "--images",
        images.to_str().unwrap(),
        "--check",
    ]);
    let last = names[names.len() - 1];
    assert!(
        stderr.contains(&format!("no image of {last} was built")),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
