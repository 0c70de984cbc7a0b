//! Exit codes of every subcommand, defined once (README.md and docs/job-files.md list them).
//! 0 is success; 100 and 101 (power off, reboot) belong to the TUI and init.

use engine::job::Status;

/// The job failed, was cancelled, or (verify) the image is damaged.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap uses 2 as well), or a job file could not be read or is not a
/// valid job file: the job never started (init then shows the UI instead of `lifeboat.after`).
pub const USAGE: u8 = disk::boot::EXIT_NOT_STARTED;
/// The job completed but skipped unreadable sectors.
pub const BAD_SECTORS: u8 = 3;
/// The copy or restore is complete, but growing the last file system failed: it keeps its old
/// size inside the grown partition.
pub const GROW_FAILED: u8 = 4;

/// The exit code of a job that ended with `status`.
pub fn of(status: Status) -> u8 {
    match status {
        Status::Completed => 0,
        Status::CompletedWithBadSectors => BAD_SECTORS,
        Status::CompletedGrowFailed => GROW_FAILED,
        Status::Cancelled | Status::Failed => FAILURE,
    }
}

/// The code of a run of several jobs (a job file): a failure over skipped sectors over a failed
/// grow over success, as one job's status ranks them.
pub fn worst(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        GROW_FAILED => 1,
        BAD_SECTORS => 2,
        _ => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_exit_code_and_grow_failure_is_not_a_failure() {
        let codes = [
            of(Status::Completed),
            of(Status::CompletedWithBadSectors),
            of(Status::CompletedGrowFailed),
            of(Status::Failed),
        ];
        assert_eq!(codes, [0, 3, 4, 1]);
        assert_eq!(of(Status::Cancelled), FAILURE);
        assert_ne!(GROW_FAILED, USAGE);
    }

    #[test]
    fn a_job_file_reports_failure_over_bad_sectors_over_a_failed_grow() {
        assert_eq!(worst(0, GROW_FAILED), GROW_FAILED);
        assert_eq!(worst(GROW_FAILED, BAD_SECTORS), BAD_SECTORS);
        assert_eq!(worst(BAD_SECTORS, GROW_FAILED), BAD_SECTORS);
        assert_eq!(worst(BAD_SECTORS, FAILURE), FAILURE);
        assert_eq!(worst(FAILURE, 0), FAILURE);
    }
}
