package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/token"
)

// Token modes.
const (
	tokenMint   = "mint"
	tokenIPConf = "ipconf"
	tokenNone   = "none"
)

// tokenTTL covers the longest run: a minted token must not expire while its device is connected.
const tokenTTL = time.Hour

// baselineSecret signs the baseline's placeholder tokens, so their Login frames have the size and
// minting cost of real ones; the echo server checks nothing.
const baselineSecret = "plato-bench-baseline-not-checked"

// didOf names device i of a run. Deterministic, so the parent can push to dids its workers hold.
func didOf(runID string, i int) string { return runID + "-" + strconv.Itoa(i) }

// tokenSource returns a device's token: minted, fetched from ipconf, or a placeholder.
func (f *fleet) tokenSource() (func(ctx context.Context, did string) (string, error), error) {
	switch f.spec.TokenMode {
	case tokenMint, tokenNone:
		secret := f.spec.TokenSecret
		if f.spec.TokenMode == tokenNone {
			secret = baselineSecret
		}
		signer, err := token.NewSigner([]byte(secret), tokenTTL)
		if err != nil {
			return nil, fmt.Errorf("token secret: %w", err)
		}
		return func(_ context.Context, did string) (string, error) {
			tok, _ := signer.Issue(f.spec.AppID, did, did, time.Now(), time.Time{})
			return tok, nil
		}, nil
	case tokenIPConf:
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: f.spec.Concurrency}}
		return func(ctx context.Context, did string) (string, error) {
			cred, err := credential.MintHS256(f.spec.AppID, f.spec.CredentialKID, f.spec.CredentialSecret, did, did, time.Now(), tokenTTL)
			if err != nil {
				return "", err
			}
			l, err := client.FetchEndpoints(ctx, hc, f.spec.IPConfURL, f.spec.AppID, did, cred)
			if err != nil {
				return "", err
			}
			return l.Token, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown token mode %q", f.spec.TokenMode)
}

// connectAll logs every device of the spec in, Concurrency at a time and at most ConnectRate per
// second, until ctx ends (the connect budget). Connect latency runs from asking for the token (so
// it includes the ipconf call in ipconf mode) to the LoginAck.
func (f *fleet) connectAll(ctx context.Context) *ConnectResult {
	res := &ConnectResult{Attempted: f.spec.Count, Failures: map[string]int{}, RSSBefore: selfRSS()}
	lat := NewRecorder()
	tokenFor, err := f.tokenSource()
	if err != nil {
		res.Failures[err.Error()] = f.spec.Count
		res.Latency = lat.Snapshot()
		return res
	}
	var mu sync.Mutex
	sem := make(chan struct{}, f.spec.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	res.Start = start.UnixNano()
	var pace time.Duration
	if f.spec.ConnectRate > 0 {
		pace = time.Duration(float64(time.Second) / f.spec.ConnectRate)
	}
	fail := func(why string) {
		mu.Lock()
		res.Failures[why]++
		mu.Unlock()
	}
	for k := 0; k < f.spec.Count; k++ {
		if pace > 0 {
			if d := time.Until(start.Add(time.Duration(k) * pace)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			fail("connect budget exhausted before dialing")
			continue
		}
		idx := f.spec.First + k
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := &device{f: f, idx: idx, did: didOf(f.spec.RunID, idx), dlWake: make(chan struct{}, max(1, f.spec.Window))}
			t0 := time.Now()
			tok, err := tokenFor(ctx, d.did)
			if err != nil {
				fail("token: " + errClass(err))
				return
			}
			if err := d.login(ctx, f.spec.Endpoints[idx%len(f.spec.Endpoints)], tok); err != nil {
				fail(err.Error())
				return
			}
			lat.Record(int64(time.Since(t0)))
			mu.Lock()
			if e := time.Now().UnixNano(); e > res.End {
				res.End = e
			}
			mu.Unlock()
			// Reading starts at once: the heartbeat loop runs during the connect phase too, and
			// its answers must be read.
			f.readers.Add(1)
			go d.readLoop()
			f.devMu.Lock()
			f.devices = append(f.devices, d)
			f.devMu.Unlock()
		}()
	}
	wg.Wait()
	res.Connected = len(f.snapshot())
	res.Latency = lat.Snapshot()
	res.RSSAfter = selfRSS()
	if res.End == 0 {
		res.End = time.Now().UnixNano()
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}
