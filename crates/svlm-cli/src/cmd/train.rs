// Placeholder until this subcommand lands; it refuses to run rather than pretend.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`svlm train` is not implemented yet")
}
