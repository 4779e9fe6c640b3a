//! Command-line interface: one clap struct per subcommand, destructured in `run` so that a new flag
//! that is not handled fails to compile. No business logic here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "secret-sync", version, about = "Keeps Kubernetes Secrets in sync with external secret managers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Fetch through the providers and print the Secrets that would be written (no cluster needed).
    Render {
        /// Manifest files (multi-document YAML) holding stores and ExternalSecrets.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("failed to generate CRDs: {0}")]
    GenerateCrds(#[from] serde_yaml_ng::Error),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

impl Cli {
    pub async fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Crds => {
                print!("{}", crate::api::crds_yaml()?);
                Ok(())
            }
            Command::Render { files } => {
                let out = crate::render::render_files(&files).await?;
                print!("{out}");
                Ok(())
            }
        }
    }
}
