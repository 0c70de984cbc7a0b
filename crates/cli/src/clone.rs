//! `lifeboat clone SOURCE TARGET` and `lifeboat copy SOURCE-PARTITION TARGET-PARTITION`: the
//! arguments become an `engine::job::JobSpec`; `jobs::execute` does the rest.

use crate::jobs;
use anyhow::Result;
use engine::clone::CloneOptions;
use engine::job::{CloneSpec, CopyInto, CopySpec, JobSpec};
use engine::rescue::ReadPolicy;

/// Options shared by clone and copy.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Read back what was written and compare it with the source.
    #[arg(long)]
    pub verify: bool,
    /// Stop at the first unreadable source sector instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (scripts).
    #[arg(long)]
    pub yes: bool,
    /// Progress and result as JSON lines.
    #[arg(long)]
    pub json: bool,
}

impl WriteArgs {
    /// How the job is presented.
    pub fn ui(&self) -> jobs::Ui {
        jobs::Ui {
            yes: self.yes,
            json: self.json,
            dry_run: self.dry_run,
        }
    }

    fn options(&self, grow_last: bool, new_ids: bool) -> CloneOptions {
        CloneOptions {
            grow_last,
            new_ids,
            verify: self.verify,
            read: ReadPolicy {
                strict: self.strict,
            },
        }
    }
}

/// The clone job `lifeboat clone` and a job file's clone step describe.
pub fn clone_spec(
    source: &str,
    target: &str,
    grow_last: bool,
    new_ids: bool,
    args: &WriteArgs,
) -> Result<JobSpec> {
    Ok(JobSpec::Clone(CloneSpec {
        source: crate::resolve_target(source)?,
        target: crate::resolve_target(target)?,
        options: args.options(grow_last, new_ids),
    }))
}

pub fn clone(
    source: &str,
    target: &str,
    grow_last: bool,
    new_ids: bool,
    args: &WriteArgs,
) -> Result<u8> {
    let spec = clone_spec(source, target, grow_last, new_ids, args)?;
    jobs::execute(spec, &args.ui()).map(crate::exit::of)
}

pub fn copy(
    source: &str,
    target: &str,
    part: Option<u32>,
    to_part: Option<u32>,
    new_partition: bool,
    args: &WriteArgs,
) -> Result<u8> {
    let into = match (new_partition, to_part) {
        (true, _) => CopyInto::FreeSpace,
        (false, Some(n)) => CopyInto::Partition(n),
        (false, None) => CopyInto::Whole,
    };
    let spec = JobSpec::Copy(CopySpec {
        source: crate::resolve_target(source)?,
        part,
        target: crate::resolve_target(target)?,
        into,
        options: args.options(false, false),
    });
    jobs::execute(spec, &args.ui()).map(crate::exit::of)
}
