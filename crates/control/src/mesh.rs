//! Reading the mesh config file (Istio's `mesh` format: the `mesh` key of the
//! `istio` ConfigMap), layered over Istio's defaults.

use std::path::Path;

use weft_api::mesh::MeshConfig;
use weft_api::yaml::parse_documents;

use crate::error::ControlError;

/// `None` (no `--mesh-config`) gives Istio's defaults.
pub fn load_mesh_config(path: Option<&Path>) -> Result<MeshConfig, ControlError> {
    let Some(path) = path else {
        return Ok(MeshConfig::istio_default());
    };
    let error = |message: String| ControlError::MeshConfig {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    mesh_config_from_text(&text).map_err(error)
}

/// The first YAML document of `text` over Istio's defaults; an empty text
/// gives the defaults.
pub fn mesh_config_from_text(text: &str) -> Result<MeshConfig, String> {
    let overlay = match parse_documents(text).into_iter().next() {
        None => serde_json::Value::Null,
        Some(Ok(doc)) => doc.value,
        Some(Err(e)) => return Err(format!("line {}: {}", e.line, e.message)),
    };
    MeshConfig::from_overlay(&overlay).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_and_defaults() {
        let mesh = mesh_config_from_text(
            "rootNamespace: weft\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        )
        .expect("valid mesh config");
        assert_eq!(mesh.root_namespace(), "weft");
        assert!(mesh.is_registry_only());
        let defaults = mesh_config_from_text("").expect("empty mesh config");
        assert_eq!(defaults.root_namespace(), "istio-system");
        assert!(mesh_config_from_text("rootNamespace: [1]").is_err());
    }
}
