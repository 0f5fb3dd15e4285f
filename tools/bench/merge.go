package bench

// Merging the workers' reports: counts add, histograms merge exactly (same buckets everywhere),
// per-second series add index by index (every worker counts seconds from the same start command),
// and the connect phase spans from the first worker's first dial to the last worker's last login.

func mergeConnect(dst, src *ConnectResult) {
	if src == nil {
		return
	}
	dst.Attempted += src.Attempted
	dst.Connected += src.Connected
	if dst.Start == 0 || (src.Start != 0 && src.Start < dst.Start) {
		dst.Start = src.Start
	}
	dst.End = max(dst.End, src.End)
	if dst.Latency == nil {
		dst.Latency = &Histogram{}
	}
	dst.Latency.Merge(src.Latency)
	dst.Failures = mergeCounts(dst.Failures, src.Failures)
}

func mergeResult(dst, src *WorkerResult) {
	if src == nil {
		return
	}
	dst.Sent += src.Sent
	dst.Acked += src.Acked
	dst.Refused += src.Refused
	dst.Lost += src.Lost
	dst.Duplicated += src.Duplicated
	dst.Unexpected += src.Unexpected
	dst.Skipped += src.Skipped
	dst.HeartbeatSent += src.HeartbeatSent
	dst.HeartbeatAck += src.HeartbeatAck
	dst.HeartbeatAckMeasured += src.HeartbeatAckMeasured
	dst.OtherDownlinks += src.OtherDownlinks
	dst.Retransmitted += src.Retransmitted
	dst.PushCalls += src.PushCalls
	dst.Connected += src.Connected
	dst.PerSec = addSeries(dst.PerSec, src.PerSec)
	dst.SentPerSec = addSeries(dst.SentPerSec, src.SentPerSec)
	dst.Codes = mergeCounts(dst.Codes, src.Codes)
	dst.Dropped = mergeCounts(dst.Dropped, src.Dropped)
	for k, v := range src.Rounds {
		if dst.Rounds == nil {
			dst.Rounds = map[int]RoundResult{}
		}
		cur := dst.Rounds[k]
		dst.Rounds[k] = RoundResult{Received: cur.Received + v.Received, Last: max(cur.Last, v.Last)}
	}
}

func addSeries(a, b []uint64) []uint64 {
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for i, v := range b {
		a[i] += v
	}
	return a
}

func mergeCounts(dst, src map[string]int) map[string]int {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]int{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}
