//! Questions to a person as MCP elicitations: when the client declared form elicitation,
//! each question of the session is also sent to it (`elicitation/create`) with one choice,
//! `answer`; what the person picks is written to the question store like any other answer
//! (the first answer wins, from whichever channel). A client without elicitation gets
//! nothing: its questions go to the other channels (`paddock approvals`, serve).

use std::sync::Arc;

use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema, EnumSchema, PrimitiveSchemaDefinition};
use rmcp::service::{ElicitationMode, Peer};
use rmcp::RoleServer;

use crate::approvals::{Answer, Prompt, Question, Scope, Store, Verdict};

/// The choices offered, and what each means.
const CHOICES: [(&str, Verdict, Scope); 5] = [
    ("allow once", Verdict::Allow, Scope::Once),
    ("allow for this session", Verdict::Allow, Scope::Session),
    ("allow always", Verdict::Allow, Scope::Always),
    ("deny", Verdict::Deny, Scope::Once),
    ("deny always", Verdict::Deny, Scope::Always),
];

/// The prompt that elicits answers from the client behind `peer`; `None` when it does not
/// support form elicitation.
pub(crate) fn prompt(peer: Peer<RoleServer>, rt: tokio::runtime::Handle) -> Option<Prompt> {
    if !peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
        return None;
    }
    Some(Arc::new(move |q: &Question, store: &Store| {
        let (peer, q, store) = (peer.clone(), q.clone(), store.clone());
        rt.spawn(async move { ask(peer, q, store).await });
    }))
}

async fn ask(peer: Peer<RoleServer>, q: Question, store: Store) {
    let values: Vec<String> = CHOICES.iter().map(|(v, _, _)| v.to_string()).collect();
    let schema = ElicitationSchema::builder()
        .required_property("answer", PrimitiveSchemaDefinition::Enum(EnumSchema::builder(values).build()))
        .build();
    let schema = match schema {
        Ok(s) => s,
        Err(e) => return tracing::warn!("elicitation schema: {e}"),
    };
    let wait = std::time::Duration::from_millis(q.deadline_ms.saturating_sub(crate::approvals::store::now_ms()));
    let params =
        ElicitRequestParams::FormElicitationParams { meta: None, message: q.describe(), requested_schema: schema };
    let result = match peer.create_elicitation_with_timeout(params, Some(wait)).await {
        Ok(r) => r,
        Err(e) => return tracing::info!("question {} not answered by the MCP client: {e}", q.id),
    };
    let chosen = match result.action {
        ElicitationAction::Accept => result.content.as_ref().and_then(|c| c.get("answer")).and_then(|a| a.as_str()),
        // An explicit "no" is a denial of this call; a dismissal leaves the question open.
        ElicitationAction::Decline => Some("deny"),
        _ => None,
    };
    let Some((_, verdict, scope)) = chosen.and_then(|c| CHOICES.iter().find(|(v, _, _)| *v == c)) else { return };
    let by = format!("MCP client (elicitation, server pid {})", std::process::id());
    let Ok(answer) = Answer::new(*verdict, *scope, by) else { return };
    if let Err(e) = store.answer(&q.id, &answer) {
        tracing::info!("the MCP client's answer to {}: {e}", q.id);
    }
}
