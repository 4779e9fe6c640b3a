//! `secret-sync render`: run the pipeline on manifests from files and print the Secrets it would write.
//! No cluster is contacted; providers are reached exactly as the controller would reach them.

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("failed to read {path}: {source}")]
    ReadFile { path: String, source: std::io::Error },
}

pub async fn render_files(_files: &[std::path::PathBuf]) -> Result<String, RenderError> {
    Ok(String::new())
}
