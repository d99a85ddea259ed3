//! Statistics per request class, and for the run as a whole.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_core::{ClassId, RequestRecord};

use crate::set::{Merge, MetricSet};
use crate::slo::RequestSlo;

/// One [`MetricSet`] per class. The run's overall statistics are the merge of its classes', so
/// they are exactly what one set fed every record would hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSets {
    sets: BTreeMap<ClassId, MetricSet>,
}

impl ClassSets {
    /// Sets for the given classes, each counting goodput against its own per-request SLO.
    pub fn new(classes: impl IntoIterator<Item = (ClassId, Option<RequestSlo>)>) -> ClassSets {
        ClassSets {
            sets: classes
                .into_iter()
                .map(|(id, slo)| (id, MetricSet::with_slo(slo)))
                .collect(),
        }
    }

    /// Sets as they are (e.g. read back from a report).
    pub fn from_sets(sets: impl IntoIterator<Item = (ClassId, MetricSet)>) -> ClassSets {
        ClassSets {
            sets: sets.into_iter().collect(),
        }
    }

    /// Adds a record to its class (a class not declared up front gets a set of its own).
    pub fn add(&mut self, r: &RequestRecord) {
        self.sets.entry(r.class).or_default().add(r);
    }

    pub fn get(&self, class: ClassId) -> Option<&MetricSet> {
        self.sets.get(&class)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ClassId, &MetricSet)> {
        self.sets.iter().map(|(k, v)| (*k, v))
    }

    /// All classes together. `slo_met` sums each class's count against its own SLO; the overall
    /// set carries no SLO of its own.
    pub fn overall(&self) -> MetricSet {
        let mut all = MetricSet::default();
        for s in self.sets.values() {
            all.merge(s);
        }
        all.slo = None;
        all
    }
}

impl Merge for ClassSets {
    fn merge(&mut self, other: &Self) {
        for (k, s) in &other.sets {
            self.sets.entry(*k).or_default().merge(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::tests::rec;

    #[test]
    fn per_class_sets_merge_into_the_overall_exactly() {
        let mut classes = ClassSets::new([(ClassId(0), None), (ClassId(1), None)]);
        let mut one = MetricSet::default();
        let (mut shard_a, mut shard_b) = (ClassSets::default(), ClassSets::default());
        for i in 0..200u64 {
            let mut r = rec(
                i,
                i * 5,
                i * 5 + 1,
                20 + i % 13,
                3 + i % 5,
                2 + (i % 9) as u32,
            );
            r.class = ClassId((i % 3 == 0) as u16);
            classes.add(&r);
            one.add(&r);
            if i % 2 == 0 {
                shard_a.add(&r)
            } else {
                shard_b.add(&r)
            }
        }
        assert_eq!(classes.overall(), one);
        let c1 = classes.get(ClassId(1)).unwrap();
        assert_eq!(c1.measured(), 67);
        // Two processes' per-class states merge into one process's.
        let back: ClassSets =
            serde_json::from_str(&serde_json::to_string(&shard_a).unwrap()).unwrap();
        let mut merged = back;
        merged.merge(&shard_b);
        for (id, s) in classes.iter() {
            assert_eq!(merged.get(id).unwrap(), s);
        }
    }
}
