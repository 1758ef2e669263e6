//! Where the hub and its publishers read the time: the system's monotonic clock, or in
//! unit tests one that moves only when told, so TTLs are tested without sleeping.

use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::Mutex<Instant>>),
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Self::System => Instant::now(),
            #[cfg(test)]
            Self::Manual(now) => *now.lock().unwrap(),
        }
    }

    #[cfg(test)]
    pub fn advance(&self, by: std::time::Duration) {
        match self {
            Self::System => panic!("the system clock cannot be moved"),
            Self::Manual(now) => *now.lock().unwrap() += by,
        }
    }
}
