//! Header maps reused within a worker thread. Every proxied request builds two
//! (its own head and the upstream response's head) and drops both once sent;
//! taking them from here instead spares the two allocations each map costs
//! to build and the two frees to drop.

use std::cell::RefCell;

use http::HeaderMap;

/// Spare maps kept per thread: enough for the requests between a map being
/// given back and the next head being parsed on the same worker.
const MAX_SPARE: usize = 64;
/// A map grown past this many headers is freed rather than kept, so that one
/// request with very many headers does not pin its memory for good.
const MAX_KEPT_CAPACITY: usize = 32;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for at least `capacity` headers.
pub fn take(capacity: usize) -> HeaderMap {
    match SPARE.try_with(|spare| spare.borrow_mut().pop()) {
        Ok(Some(mut map)) => {
            map.reserve(capacity);
            map
        }
        _ => HeaderMap::with_capacity(capacity),
    }
}

/// Keeps `map`, emptied, for a later [`take`] on this thread.
pub fn give_back(mut map: HeaderMap) {
    let capacity = map.capacity();
    if capacity == 0 || capacity > MAX_KEPT_CAPACITY {
        return;
    }
    map.clear();
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn spare_count() -> usize {
        SPARE.with(|s| s.borrow().len())
    }

    #[test]
    fn a_map_given_back_comes_back_empty_with_its_room() {
        let mut map = take(8);
        map.insert("x-a", HeaderValue::from_static("1"));
        let room = map.capacity();
        let before = spare_count();
        give_back(map);
        assert_eq!(spare_count(), before + 1);
        let again = take(4);
        assert_eq!(spare_count(), before);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
    }

    #[test]
    fn a_map_grown_large_is_not_kept() {
        let mut big = HeaderMap::with_capacity(MAX_KEPT_CAPACITY * 4);
        big.insert("x-a", HeaderValue::from_static("1"));
        // Drain whatever this thread holds, then hand back the large map.
        while spare_count() > 0 {
            let _ = take(0);
        }
        give_back(big);
        assert_eq!(spare_count(), 0);
    }

    #[test]
    fn take_makes_room_for_what_is_asked() {
        give_back(HeaderMap::with_capacity(2));
        let map = take(20);
        assert!(map.capacity() >= 20);
    }
}
