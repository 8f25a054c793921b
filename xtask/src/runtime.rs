//! Placeholder: the runtime build pipeline (owned by the runtime engineer).

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
