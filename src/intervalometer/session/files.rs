//! File names: shots wait for the files the camera reports, and a shot recorded as failed
//! whose file appears was taken after all.

use super::*;

impl Session {
    pub(super) fn await_files(&mut self, slot: u64, uncertain: bool) {
        if self.pending_files.len() == PENDING_FILES {
            self.pending_files.pop_front();
        }
        self.pending_files.push_back(Pending { slot, uncertain });
    }

    /// Assigns file names from event polling to shots, oldest first. RAW+JPEG of one shot
    /// share a stem and go to the same shot. A file for a shot whose reply was lost makes it
    /// count as taken; files arriving while a shot is in flight with no older shot waiting
    /// are kept for that shot.
    pub(super) fn name_files(&mut self, names: Vec<String>) {
        let mut named: Vec<(u64, Vec<String>)> = Vec::new();
        for name in names {
            let stem = name
                .rsplit('/')
                .next()
                .unwrap_or(&name)
                .rsplit_once('.')
                .map(|(s, _)| s.to_string())
                .unwrap_or_else(|| name.clone());
            let slot = match &self.last_named {
                Some((slot, s)) if *s == stem => Some(*slot),
                _ => match self.pending_files.pop_front() {
                    Some(p) => {
                        if p.uncertain {
                            self.taken_after_all(p.slot);
                        }
                        Some(p.slot)
                    }
                    None if self.shot_in_flight() => {
                        self.early_files.push(name);
                        continue;
                    }
                    None => None,
                },
            };
            let Some(slot) = slot else {
                continue; // a file we did not shoot (a test photo taken by hand)
            };
            self.last_named = Some((slot, stem));
            match named.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, files)) => files.push(name),
                None => named.push((slot, vec![name])),
            }
        }
        for (slot, files) in named {
            if self.auto.is_some() {
                // The JPEG's thumbnail (a RAW's would do too); while one is being fetched (the
                // event worker is often in a long poll), the newest waits its turn.
                let pick = files
                    .iter()
                    .find(|f| f.to_ascii_uppercase().ends_with(".JPG"))
                    .or(files.first());
                if let Some(path) = pick {
                    self.measure_next = Some((slot, path.clone()));
                    self.next_measure();
                }
            }
            self.actions
                .push_back(Action::Journal(JournalEntry::Files { slot, files }));
        }
    }

    /// A failed shot's file appeared: it was taken, only the reply was lost.
    pub(super) fn taken_after_all(&mut self, slot: u64) {
        let Some(i) = self.uncertain.iter().position(|r| r.slot == slot) else {
            return;
        };
        let Some(mut record) = self.uncertain.remove(i) else {
            return;
        };
        self.stats.shots_failed = self.stats.shots_failed.saturating_sub(1);
        self.stats.shots_successful += 1;
        record.ok = true;
        record.error = None;
        record.reply_lost = true;
        self.actions
            .push_back(Action::Journal(JournalEntry::Taken { slot }));
        self.actions
            .push_back(Action::Notify(Notice::Taken(record)));
    }
}
