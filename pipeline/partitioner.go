package pipeline

import "time"

// splitEvery is the least time between two warnings about users whose
// events arrive on more than one partition.
const splitEvery = 10 * time.Second

// splitWarnings rate-limits the warning about split users: the first
// split user is logged at once, later ones at most every splitEvery, with
// the number of users split since the last warning.
type splitWarnings struct {
	last  time.Time
	quiet int // split users not logged since the last warning
}

// userSplit counts a user whose event arrived on partition now while its
// earlier events came on first, and warns (rate-limited): a user's events
// must stay on one partition, or its session is split between workers.
// Producers must key events by user id and partition by murmur2 of the
// key, as the Java client and adaptrec produce do.
func (w *Worker) userSplit(user string, first, now int32) {
	w.metrics.UserSplit()
	w.splits.quiet++
	if t := time.Now(); w.splits.last.IsZero() || t.Sub(w.splits.last) >= splitEvery {
		w.log.Warn("a user's events arrive on more than one partition: its session is split between workers; producers must partition by murmur2 of the user id (kcat/librdkafka: -X partitioner=murmur2_random)",
			"topic", w.cfg.Topics.Feedback, "user", user, "partitions", []int32{first, now}, "users_split", w.splits.quiet)
		w.splits.last, w.splits.quiet = t, 0
	}
}
