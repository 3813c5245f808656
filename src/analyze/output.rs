//! Text, JSON and YAML renderings of analysis messages.

use anyhow::Result;
use serde::Serialize;
use weft_analyze::Message;

use super::OutputFormat;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageOut<'a> {
    code: &'a str,
    level: String,
    message: &'a str,
    resource: ResourceOut<'a>,
    origin: OriginOut<'a>,
    documentation_url: String,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct OriginOut<'a> {
    file: &'a str,
    line: usize,
}

fn to_out<'a>(m: &'a Message) -> MessageOut<'a> {
    MessageOut {
        code: m.code.id,
        level: m.level.to_string(),
        message: &m.text,
        resource: ResourceOut {
            kind: &m.resource.kind,
            namespace: &m.resource.namespace,
            name: &m.resource.name,
        },
        origin: OriginOut {
            file: &m.origin.file,
            line: m.origin.line,
        },
        documentation_url: format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/",
            m.code.id.to_ascii_lowercase()
        ),
    }
}

pub fn render(messages: &[&Message], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Text => messages.iter().map(|m| format!("{m}\n")).collect(),
        OutputFormat::Json => {
            let out: Vec<MessageOut> = messages.iter().map(|m| to_out(m)).collect();
            serde_json::to_string_pretty(&out)? + "\n"
        }
        OutputFormat::Yaml => {
            let out: Vec<MessageOut> = messages.iter().map(|m| to_out(m)).collect();
            if out.is_empty() {
                "[]\n".to_string()
            } else {
                serde_saphyr::to_string(&out)?
            }
        }
    })
}
