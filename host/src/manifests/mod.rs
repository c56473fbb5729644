//! `fabrikam manifests`: the functions' own declarations ([`runtime::deploy`]) and one
//! environment's input file, rendered into the Kubernetes and KEDA objects under
//! `keda/<profile>/` (a kustomize folder per profile).

pub mod input;
mod objects;
mod outputs;
mod scaler;

use std::fmt;
use std::path::Path;

use runtime::deploy::{Deployment, Output, Profile};
use serde_json::Value;

pub use crate::generated::{Files, differences, write};
pub use input::Environment;
pub use objects::{PORT, SCALER};

/// The declarations of every registered function, as their crates state them.
pub fn declarations() -> Vec<Deployment> {
    crate::functions()
        .iter()
        .map(runtime::Registration::deployment)
        .collect()
}

/// Why manifests could not be generated: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub Vec<String>);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    fn one(message: String) -> Self {
        Self(vec![message])
    }
}

/// Reads an input file, refusing unknown fields.
pub fn read_input(path: &Path) -> Result<Environment, ManifestError> {
    read_json(path)
}

/// Pins `env`'s images to the digests in the catalog at `path` (`fabrikam images`).
pub fn pin_images(env: &mut Environment, path: &Path) -> Result<(), ManifestError> {
    let catalog = crate::images::Catalog::read(path)
        .map_err(|e| ManifestError::one(format!("{}: {e}", path.display())))?;
    env.pinned_images = Some(catalog);
    Ok(())
}

/// Puts the infra deployment's outputs (the JSON file `scripts/deploy` saves) in place of
/// `env`'s infra values; every missing output and every disagreement is reported at once.
pub fn apply_outputs(
    env: &mut Environment,
    path: &Path,
    functions: &[Deployment],
) -> Result<(), ManifestError> {
    let outputs: Value = read_json(path)?;
    let problems = outputs::apply(env, &outputs, functions);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ManifestError(
            problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        ))
    }
}

/// Writes `env` as an input file (what a rendering was made from).
pub fn write_input(env: &Environment, path: &Path) -> Result<(), ManifestError> {
    let failed = |e: &dyn fmt::Display| ManifestError::one(format!("{}: {e}", path.display()));
    let mut text = serde_json::to_string_pretty(env).map_err(|e| failed(&e))?;
    text.push('\n');
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
    }
    std::fs::write(path, text).map_err(|e| failed(&e))
}

/// Reads a declaration written as JSON (the broken-declaration fixtures use this).
pub fn read_declaration(path: &Path) -> Result<Deployment, ManifestError> {
    read_json(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ManifestError> {
    let failed = |e: &dyn fmt::Display| ManifestError::one(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| failed(&e))?;
    serde_json::from_str(&text).map_err(|e| failed(&e))
}

/// Puts `declaration` in place of the function of the same name, or adds it.
pub fn replace_declaration(functions: &mut Vec<Deployment>, declaration: Deployment) {
    match functions.iter_mut().find(|f| f.name == declaration.name) {
        Some(slot) => *slot = declaration,
        None => functions.push(declaration),
    }
}

/// Problems that involve more than one declaration.
fn check_together(functions: &[Deployment]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, f) in functions.iter().enumerate() {
        if functions[..i].iter().any(|g| g.name == f.name) {
            problems.push(format!("{}: declared twice", f.name));
        }
        for output in &f.outputs {
            if let Output::Function { name, .. } = output {
                let callee = functions.iter().find(|g| &g.name == name);
                if callee.and_then(Deployment::http_trigger).is_none() {
                    problems.push(format!(
                        "{}: calls {name:?}, which is not a declared HTTP function",
                        f.name
                    ));
                }
            }
        }
        let Some((prefixes, _)) = f.http_trigger() else {
            continue;
        };
        for g in &functions[..i] {
            let Some((others, _)) = g.http_trigger() else {
                continue;
            };
            for p in prefixes {
                if others.contains(p) {
                    problems.push(format!("{}: path prefix {p} is also {}'s", f.name, g.name));
                }
            }
        }
    }
    problems
}

/// Renders `functions` for `profile` with the values of `env`, after checking both; every
/// problem is reported at once.
pub fn render(
    profile: Profile,
    functions: &[Deployment],
    env: &Environment,
) -> Result<Files, ManifestError> {
    let mut problems: Vec<String> = functions.iter().flat_map(Deployment::check).collect();
    problems.extend(check_together(functions));
    problems.extend(env.check(functions));
    if !problems.is_empty() {
        return Err(ManifestError(problems));
    }

    let mut files = Files::new();
    let mut resources = Vec::new();
    let mut put = |name: String, objects: Vec<Value>| -> Result<(), ManifestError> {
        files.insert(name.clone(), yaml(profile, &objects)?);
        resources.push(name);
        Ok(())
    };
    put(
        "namespace.yaml".to_owned(),
        objects::namespace(functions, env, profile),
    )?;

    let http_functions: Vec<&str> = functions
        .iter()
        .filter(|f| f.http_trigger().is_some())
        .map(|f| f.name.as_str())
        .collect();
    let mut policies = objects::namespace_policies(&http_functions, env);
    for f in functions {
        policies.push(objects::azure_egress(f, env));
        policies.extend(objects::calls_to_functions(f, env));
    }
    put("network-policies.yaml".to_owned(), policies)?;

    let public: Vec<String> = functions
        .iter()
        .filter_map(Deployment::http_trigger)
        .flat_map(|(_, public)| public.iter().cloned())
        .collect();
    let mut routing = vec![objects::interceptor_service(env)];
    if !public.is_empty() {
        routing.push(objects::ingress(&public, env));
    }
    put("ingress.yaml".to_owned(), routing)?;
    if env.environment_name.is_none() {
        put("cluster.yaml".to_owned(), objects::cluster(env))?;
    }

    let scaler = scaler::objects(functions, env, profile);
    if !scaler.is_empty() {
        put("scaler.yaml".to_owned(), scaler)?;
    }

    for f in functions {
        let mut list = vec![objects::service_account(f, env)];
        if !f.secrets.is_empty() {
            list.push(objects::secret_provider_class(f, env));
        }
        list.push(objects::deployment(f, env));
        list.push(objects::service(f, env));
        if let Some(queue) = f.queue_trigger() {
            list.push(objects::trigger_authentication(f, env));
            list.push(objects::scaled_object(f, queue, env, profile));
        }
        if let Some((prefixes, public)) = f.http_trigger() {
            list.push(objects::interceptor_route(
                f, prefixes, public, env, profile,
            ));
            list.push(objects::http_scaled_object(f, env, profile));
        }
        if profile == Profile::Prod {
            list.push(objects::pod_disruption_budget(f, env));
        }
        put(format!("{}.yaml", f.name), list)?;
    }

    // No `namespace:`: every namespaced object names its own, and the cluster-wide ones
    // (cluster.yaml) must keep theirs (none, or kube-system).
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    files.insert(
        "kustomization.yaml".to_owned(),
        yaml(profile, &[kustomization])?,
    );
    Ok(files)
}

/// Objects as one YAML stream, under a header saying where it comes from.
fn yaml(profile: Profile, objects: &[Value]) -> Result<String, ManifestError> {
    let mut out = format!(
        "# Generated by `fabrikam manifests --profile {}` from the functions' declarations\n\
         # and keda/input/{}.json. Do not edit: change the declaration or the input instead.\n",
        profile.name(),
        profile.name()
    );
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_yaml_ng::to_string(object)
            .map_err(|e| ManifestError::one(format!("cannot write YAML: {e}")))?;
        out.push_str(&text);
    }
    Ok(out)
}
