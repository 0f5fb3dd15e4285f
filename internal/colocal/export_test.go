package colocal

// InFlight is how many calls are in e's handler.
func InFlight[H any](e *Entry[H]) int64 { return e.n.Load() &^ stoppedBit }
