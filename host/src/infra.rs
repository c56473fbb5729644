//! `infra/functions.json`: what the Bicep needs to know of the functions, generated from their
//! declarations so the two cannot disagree. `infra/main.bicep` loads it
//! (`loadJsonContent`) to create one identity, federated credential and vault per function,
//! the vault's secrets, the queues, and each identity's role on the queue it sends to or
//! receives from; a test (`host/tests/infra.rs`) fails when the committed file differs from
//! what the declarations give.

use runtime::deploy::{Deployment, Output};
use serde::Serialize;

/// The committed file, relative to the workspace root.
pub const FUNCTIONS_JSON: &str = "infra/functions.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InfraFunctions {
    pub generated_by: &'static str,
    /// Each function's name and the Key Vault objects its vault must hold.
    pub functions: Vec<InfraFunction>,
    /// Every queue a function is triggered by or sends to.
    pub queues: Vec<String>,
    /// Who needs which role on which queue.
    pub queue_roles: Vec<QueueRole>,
    /// The queues KEDA scales a function on: its identity reads their length.
    pub scaled_queues: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InfraFunction {
    pub name: String,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRole {
    pub function: String,
    /// The function's position in `functions` (Bicep indexes its module array by it).
    pub function_index: usize,
    pub queue: String,
    /// `Sender` or `Receiver` (infra/modules/queue-access.bicep maps them to role ids).
    pub role: &'static str,
}

/// The infra's view of `functions`.
pub fn infra_functions(functions: &[Deployment]) -> InfraFunctions {
    let mut queues: Vec<String> = Vec::new();
    let mut queue_roles = Vec::new();
    let mut scaled_queues = Vec::new();
    let add = |list: &mut Vec<String>, queue: &str| {
        if !list.iter().any(|q| q == queue) {
            list.push(queue.to_owned());
        }
    };
    for (index, f) in functions.iter().enumerate() {
        let role = |queue: &str, role| QueueRole {
            function: f.name.clone(),
            function_index: index,
            queue: queue.to_owned(),
            role,
        };
        if let Some(queue) = f.queue_trigger() {
            add(&mut queues, queue);
            add(&mut scaled_queues, queue);
            queue_roles.push(role(queue, "Receiver"));
        }
        for output in &f.outputs {
            if let Output::Queue { queue } = output {
                add(&mut queues, queue);
                queue_roles.push(role(queue, "Sender"));
            }
        }
    }
    InfraFunctions {
        generated_by: "`fabrikam functions --infra` from the functions' declarations; \
                       do not edit (host/tests/infra.rs checks it)",
        functions: functions
            .iter()
            .map(|f| InfraFunction {
                name: f.name.clone(),
                secrets: f.secrets.clone(),
            })
            .collect(),
        queues,
        queue_roles,
        scaled_queues,
    }
}

/// The file's text: pretty JSON and a final newline.
pub fn functions_json(functions: &[Deployment]) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(&infra_functions(functions))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_and_a_receiver_of_one_queue_get_their_roles_and_keda_reads_it() {
        let functions = vec![
            Deployment::http("front", &["/api/front"]).output(Output::Queue {
                queue: "work".to_owned(),
            }),
            Deployment::http("store", &["/api/store"]).secrets(&["Store-Key"]),
            Deployment::queue("worker", "work"),
        ];
        let infra = infra_functions(&functions);
        assert_eq!(infra.queues, ["work"]);
        assert_eq!(infra.scaled_queues, ["work"]);
        let roles: Vec<(&str, usize, &str)> = infra
            .queue_roles
            .iter()
            .map(|r| (r.function.as_str(), r.function_index, r.role))
            .collect();
        assert_eq!(roles, [("front", 0, "Sender"), ("worker", 2, "Receiver")]);
        assert_eq!(infra.functions[1].secrets, ["Store-Key"]);
    }
}
