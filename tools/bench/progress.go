package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress follows the workers' ticks. It always keeps the totals (the broadcast driver reads
// them); it prints only when given a writer, which the command does only for a terminal.
type progress struct {
	w        io.Writer
	scenario string
	devices  int
	duration time.Duration

	mu      sync.Mutex
	target  string
	name    string
	since   time.Time
	ticks   map[int]Report
	lastSum uint64
	lastAt  time.Time
	rate    float64
	stop    chan struct{}
	stopped sync.WaitGroup
}

func newProgress(w io.Writer, o Options) *progress {
	p := &progress{w: w, scenario: o.Scenario, devices: o.Devices, duration: o.Duration, ticks: map[int]Report{}, stop: make(chan struct{})}
	if w != nil {
		p.stopped.Add(1)
		go p.loop()
	}
	return p
}

// phase starts a phase ("connecting", "running") of a target ("plato", "baseline").
func (p *progress) phase(target, name string, _ int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	carryOn := (p.scenario == ScenarioFailover || p.scenario == ScenarioUpgrade) && p.name != "connecting" && p.name != ""
	p.target, p.name, p.since = target, name, time.Now()
	if carryOn {
		return // the failover's phases share one load, and its workers' counts run on
	}
	p.ticks = map[int]Report{}
	p.lastSum, p.lastAt, p.rate = 0, p.since, 0
}

func (p *progress) tick(rep Report) {
	p.mu.Lock()
	p.ticks[rep.Worker] = rep
	p.mu.Unlock()
}

// doneTotal is the sum of the workers' latest answered/received counts.
func (p *progress) doneTotal() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, t := range p.ticks {
		n += t.Done
	}
	return n
}

func (p *progress) loop() {
	defer p.stopped.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if l := p.line(); l != "" {
				fmt.Fprintf(p.w, "\r%s\x1b[K", l)
			}
		}
	}
}

func (p *progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name == "" {
		return ""
	}
	var conns, recovered int
	var sent, done uint64
	for _, t := range p.ticks {
		conns += t.Conns
		sent += t.Sent
		done += t.Done
		recovered += t.Recovered
	}
	now := time.Now()
	if dt := now.Sub(p.lastAt).Seconds(); dt >= 0.45 {
		p.rate = float64(done-min(done, p.lastSum)) / dt
		p.lastSum, p.lastAt = done, now
	}
	el := now.Sub(p.since).Truncate(100 * time.Millisecond)
	head := fmt.Sprintf("bench %s [%s]", p.scenario, p.target)
	if p.name == "connecting" {
		return fmt.Sprintf("%s connecting %d/%d devices  %v", head, conns, p.devices, el)
	}
	if p.scenario == ScenarioFailover || p.scenario == ScenarioUpgrade {
		return fmt.Sprintf("%s %s %v  conns %d  sent %d  acked %d  %.0f/s  recovered %d/%d", head, p.name, el, conns, sent, done, p.rate, recovered, p.devices)
	}
	return fmt.Sprintf("%s %v/%v  conns %d  sent %d  done %d  %.0f/s", head, min(el, p.duration), p.duration, conns, sent, done, p.rate)
}

// done ends the current phase's line.
func (p *progress) done() {
	p.mu.Lock()
	p.name = ""
	p.mu.Unlock()
	if p.w != nil {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func (p *progress) close() {
	close(p.stop)
	p.stopped.Wait()
}
