//! Opportunistic batching: calls of one kind that arrive while earlier ones are running
//! are answered together, by one transaction, instead of one transaction each.
//!
//! A call queues its request and then either finds a free lane and runs everything queued
//! (up to a maximum) as one batch, or waits for the batch that took its request. With no
//! concurrency a batch holds one request and adds no wait; under load each lane's next
//! batch holds what arrived during its last one. This is what group commit does inside a
//! database, done one level up so that the statements, round trips and commits are shared
//! too.
//!
//! A batch runs in a task of its own, holding its lane and its callers' reply channels:
//! if the call that started it is dropped (its client went away), the batch still
//! finishes and every other caller in it still gets an answer.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

/// Requests of one kind waiting to be run together.
pub(crate) struct Coalescer<Req, Resp> {
    queue: Mutex<VecDeque<(Req, oneshot::Sender<Resp>)>>,
    lanes: Arc<Semaphore>,
    max: usize,
}

/// The batch holding a request ended without answering it (its task panicked).
#[derive(Debug)]
pub(crate) struct Lost;

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// At most `lanes` batches at once, of at most `max` requests each.
    pub(crate) fn new(lanes: usize, max: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            lanes: Arc::new(Semaphore::new(lanes.max(1))),
            max: max.max(1),
        }
    }

    /// Runs `req`, alone or with others, through `run`, which must answer each request
    /// of a batch in order (one response per request).
    pub(crate) async fn call<F, Fut>(&self, req: Req, run: F) -> Result<Resp, Lost>
    where
        F: Fn(Vec<Req>) -> Fut,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        self.queue().push_back((req, tx));
        loop {
            let permit = tokio::select! {
                biased;
                reply = &mut rx => return reply.map_err(|_| Lost),
                permit = Arc::clone(&self.lanes).acquire_owned() => {
                    permit.map_err(|_| Lost)?
                }
            };
            let batch: Vec<_> = {
                let mut queue = self.queue();
                let n = queue.len().min(self.max);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                // Another lane took this request: its answer is on the way.
                drop(permit);
                return rx.await.map_err(|_| Lost);
            }
            let (requests, replies): (Vec<Req>, Vec<oneshot::Sender<Resp>>) =
                batch.into_iter().unzip();
            let work = run(requests);
            tokio::spawn(async move {
                let responses = work.await;
                drop(permit);
                for (reply, response) in replies.into_iter().zip(responses) {
                    // A caller that went away no longer wants its answer.
                    let _ = reply.send(response);
                }
            });
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(Req, oneshot::Sender<Resp>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<Req, Resp> std::fmt::Debug for Coalescer<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("free_lanes", &self.lanes.available_permits())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn alone_a_call_is_a_batch_of_one() {
        let c = Coalescer::new(2, 8);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let answer = c
            .call(21, move |reqs: Vec<i32>| {
                seen.lock().unwrap().push(reqs.len());
                async move { reqs.into_iter().map(|r| r * 2).collect() }
            })
            .await
            .unwrap();
        assert_eq!(answer, 42);
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_arriving_during_a_batch_share_the_next_and_each_gets_its_own_answer() {
        let c = Arc::new(Coalescer::new(1, 64));
        let batches = Arc::new(AtomicUsize::new(0));
        let calls = (0..100).map(|i| {
            let c = Arc::clone(&c);
            let batches = Arc::clone(&batches);
            tokio::spawn(async move {
                c.call(i, move |reqs: Vec<i32>| {
                    batches.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        reqs.into_iter().map(|r| r + 1000).collect()
                    }
                })
                .await
                .unwrap()
            })
        });
        let answers: Vec<i32> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers, (1000..1100).collect::<Vec<_>>());
        let batches = batches.load(Ordering::SeqCst);
        assert!(batches < 20, "100 calls in {batches} batches");
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_its_maximum() {
        let c = Arc::new(Coalescer::new(1, 3));
        let largest = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|i| {
            let c = Arc::clone(&c);
            let largest = Arc::clone(&largest);
            async move {
                c.call(i, move |reqs: Vec<i32>| {
                    largest.fetch_max(reqs.len(), Ordering::SeqCst);
                    async move {
                        tokio::task::yield_now().await;
                        reqs
                    }
                })
                .await
                .unwrap()
            }
        });
        let answers = futures::future::join_all(calls).await;
        assert_eq!(answers, (0..20).collect::<Vec<_>>());
        assert!(largest.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_leader_does_not_cost_the_others_in_its_batch_their_answers() {
        let c = Arc::new(Coalescer::new(1, 64));
        let (first_gate, first_open) = tokio::sync::watch::channel(false);
        let (second_gate, second_open) = tokio::sync::watch::channel(false);
        let run = move |reqs: Vec<i32>| {
            let mut gate = if reqs.contains(&0) {
                first_open.clone()
            } else {
                second_open.clone()
            };
            async move {
                let _ = gate.wait_for(|open| *open).await;
                reqs
            }
        };
        let call = |i: i32| {
            let (c, run) = (Arc::clone(&c), run.clone());
            tokio::spawn(async move { c.call(i, run).await })
        };
        let pause = || tokio::time::sleep(Duration::from_millis(30));
        // Call 0 holds the only lane; call 1 is first in line for it, the others behind.
        let blocker = call(0);
        pause().await;
        let leader = call(1);
        pause().await;
        let others: Vec<_> = (2..6).map(call).collect();
        pause().await;
        // Call 1 now leads the batch of calls 1 to 5; its client goes away.
        first_gate.send(true).unwrap();
        pause().await;
        leader.abort();
        second_gate.send(true).unwrap();
        assert_eq!(blocker.await.unwrap().unwrap(), 0);
        for (call, i) in others.into_iter().zip(2..) {
            assert_eq!(call.await.unwrap().unwrap(), i);
        }
    }

    #[tokio::test]
    async fn a_panicking_batch_answers_lost_not_a_hang() {
        let c: Coalescer<i32, i32> = Coalescer::new(1, 8);
        let answer = c
            .call(1, |reqs: Vec<i32>| async move {
                assert!(reqs.is_empty(), "the batch failed");
                Vec::new()
            })
            .await;
        assert!(answer.is_err());
    }
}
