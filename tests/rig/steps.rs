//! Named steps of a long end-to-end scenario.
//!
//! Starting Synapse costs seconds, so one start serves a whole scenario: a customer writes, an
//! operator answers, a file goes each way, an edit, a deletion… Such a test is long, and when it
//! fails its error alone ("timed out waiting for …") does not say which part of the story broke.
//! `Steps` names the parts: each step is printed as it starts, and a scenario that ends before
//! [`Steps::finish`] (an error returned with `?`, or a panic) prints the step it stopped in.
//! libtest shows a failing test's output, so the failure reads "stopped in step 4 of
//! 'telegram conversation': the operator's photo reaches the customer".

/// The steps of one scenario. End the scenario with `steps.finish()` instead of `Ok(())`.
pub struct Steps {
    scenario: &'static str,
    number: usize,
    current: String,
    finished: bool,
}

impl Steps {
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            number: 0,
            current: String::from("(setup, before the first step)"),
            finished: false,
        }
    }

    /// Start the next step.
    pub fn step(&mut self, name: impl Into<String>) {
        self.number += 1;
        self.current = name.into();
        eprintln!("[{}] step {}: {}", self.scenario, self.number, self.current);
    }

    /// The scenario ran to its end.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.finished = true;
        eprintln!("[{}] all {} steps passed", self.scenario, self.number);
        Ok(())
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if !self.finished {
            eprintln!(
                "[{}] stopped in step {}: {}",
                self.scenario, self.number, self.current
            );
        }
    }
}
