package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/platoim/plato/internal/appstore"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/token"
)

// The apps-live scenario measures how soon an app set with `plato apps set` is served by every
// role (docs/operations.md, "Apps"): it starts the nats-restart scenario's platform (NATS as a
// `plato nats` process, a state server, a gateway and ipconf as processes), then Changes times,
// one after the other:
//
//  1. stores a new app (its own ID, business key and JWT secret) in the apps bucket, as
//     `plato apps set` does (appstore.Store.Put), and notes the time the put returned;
//  2. probes, every alPollEvery until each succeeds or alGiveUp passes: ipconf (a credential
//     signed with the new secret gets 200), a device login at the gateway (a gateway token of the
//     new app, LoginAck 0: the gateway and the state server both serve it), and the state server's
//     RPC with the new business key (Online answers);
//  3. deletes it, and probes ipconf until it answers 403.
//
// Each probe's time is from the put (or the delete) returning to the first successful probe: the
// figure includes up to one poll interval of the probe's own.

// Defaults and bounds of the apps-live scenario.
const (
	DefaultAppsLiveChanges = 20
	maxAppsLiveChanges     = 500
	// alPollEvery is how often each probe is tried.
	alPollEvery = 5 * time.Millisecond
	// alGiveUp bounds one probe's wait: far beyond the goal, so that a slow change is measured
	// rather than counted missing.
	alGiveUp = 15 * time.Second
	// alGoal is the issue's budget from a change to every role serving it.
	alGoal = time.Second
)

// AppsLiveFigures are what `plato bench apps-live` measured: the summary's "apps_live" object.
type AppsLiveFigures struct {
	Conditions AppsLiveConditions `json:"conditions"`
	// IPConf, Login and BusinessKey are from a put returning to the role serving the new app;
	// Deleted from a delete returning to ipconf refusing it (403).
	IPConf      Quantiles `json:"ipconf_ms"`
	Login       Quantiles `json:"login_ms"`
	BusinessKey Quantiles `json:"business_key_ms"`
	Deleted     Quantiles `json:"deleted_ms"`
	// Served is from a put to the last of the three: every role serves the app.
	Served Quantiles `json:"served_ms"`
	// Missed counts probes that did not succeed within give_up_s (not in the quantiles).
	Missed int `json:"missed"`
	Goals  struct {
		// ServedWithin1s: served_ms's max is at most 1000 and nothing was missed.
		ServedWithin1s bool `json:"served_within_1s"`
	} `json:"goals"`
}

// AppsLiveConditions are the run's settings.
type AppsLiveConditions struct {
	Changes     int     `json:"changes"`
	PollEveryMs float64 `json:"poll_every_ms"`
	GiveUpS     float64 `json:"give_up_s"`
	Processes   string  `json:"processes"`
}

func (o *Options) validateAppsLive() []error {
	var errs []error
	if o.Changes < 1 || o.Changes > maxAppsLiveChanges {
		errs = append(errs, fmt.Errorf("changes %d: must be 1 to %d", o.Changes, maxAppsLiveChanges))
	}
	if !config.ValidAppID(o.AppID) {
		errs = append(errs, fmt.Errorf("app ID %q: must be a valid app ID (lower case letters, digits, - and _)", o.AppID))
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errors.New("the apps-live scenario starts NATS and the roles as processes: it needs the plato binary (Options.PlatoCommand)"))
	}
	return errs
}

// runAppsLive runs the apps-live scenario; o is defaulted and valid.
func runAppsLive(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	start := time.Now()
	pl, err := startNRPlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()
	quiet := slog.New(slog.DiscardHandler)
	nc, js, err := registry.Connect(ctx, pl.natsURL, "plato-bench-apps", quiet)
	if err != nil {
		return nil, fmt.Errorf("connecting to the platform's NATS: %w", err)
	}
	defer nc.Close()
	store, err := appstore.Open(ctx, js, appstore.Config{Bucket: config.DefaultAppsBucket})
	if err != nil {
		return nil, err
	}
	signer, err := token.NewSigner([]byte(pl.tokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	state, err := apiservice.NewClient("plato", rpc.Client(pl.stateAddr, 2*time.Second)...)
	if err != nil {
		return nil, fmt.Errorf("Plato RPC client: %w", err)
	}

	var ipconf, login, key, deleted, served []int64
	missed := 0
	for i := 0; i < o.Changes && ctx.Err() == nil; i++ {
		id := fmt.Sprintf("live-%d", i)
		appKey, secret := randomHex(16), randomHex(24)
		text := fmt.Sprintf("business: %q\nkeys: {bench: %q}\nauth: {jwt: {secrets: {bench: %q}}}\n", pl.biz.addr(0), appKey, secret)
		if _, err := store.Put(ctx, id, []byte(text)); err != nil {
			return nil, fmt.Errorf("setting app %s: %w", id, err)
		}
		put := time.Now()
		probes := []func() bool{
			func() bool { return alIPConf(ctx, pl, id, secret) == http.StatusOK },
			func() bool { return alLogin(ctx, pl, signer, id) },
			func() bool {
				_, err := state.Online(ctx, &api.OnlineRequest{Caller: &api.Caller{AppId: id, Key: appKey}, Dids: []string{"x"}})
				return err == nil
			},
		}
		got := alProbe(ctx, put, probes)
		last := int64(0)
		for j, d := range got {
			if d < 0 {
				missed++
				last = -1
				continue
			}
			if last >= 0 {
				last = max(last, d)
			}
			switch j {
			case 0:
				ipconf = append(ipconf, d)
			case 1:
				login = append(login, d)
			case 2:
				key = append(key, d)
			}
		}
		if last >= 0 {
			served = append(served, last)
		}
		if err := store.Delete(ctx, id); err != nil {
			return nil, fmt.Errorf("deleting app %s: %w", id, err)
		}
		del := time.Now()
		if d := alProbe(ctx, del, []func() bool{func() bool { return alIPConf(ctx, pl, id, secret) == http.StatusForbidden }})[0]; d >= 0 {
			deleted = append(deleted, d)
		} else {
			missed++
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := AppsLiveFigures{
		Conditions: AppsLiveConditions{Changes: o.Changes, PollEveryMs: ms(alPollEvery), GiveUpS: alGiveUp.Seconds(),
			Processes: "plato nats, state, gateway and ipconf as processes of this binary; the probes in the bench process"},
		IPConf: quantilesMs(ipconf), Login: quantilesMs(login), BusinessKey: quantilesMs(key), Deleted: quantilesMs(deleted),
		Served: quantilesMs(served), Missed: missed,
	}
	f.Goals.ServedWithin1s = missed == 0 && len(served) == o.Changes && f.Served.Max <= ms(alGoal)
	s := &Summary{Scenario: o.Scenario, Duration: round3(time.Since(start).Seconds()), AppsLive: &f}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	s.Notes = append(s.Notes,
		fmt.Sprintf("%d apps set in NATS KV (bucket %s) and deleted, one after the other; ipconf, a gateway login and the state server's RPC probed every %v from the put returning", o.Changes, config.DefaultAppsBucket, alPollEvery),
		fmt.Sprintf("load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", s.LoadAverage.Before, s.LoadAverage.After))
	return s, nil
}

// alProbe runs each probe every alPollEvery, concurrently, until it succeeds or alGiveUp passes,
// and returns the ns from since to each one's first success (-1: none).
func alProbe(ctx context.Context, since time.Time, probes []func() bool) []int64 {
	out := make([]int64, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = -1
			for time.Since(since) < alGiveUp && ctx.Err() == nil {
				if p() {
					out[i] = int64(time.Since(since))
					return
				}
				time.Sleep(alPollEvery)
			}
		}()
	}
	wg.Wait()
	return out
}

// alIPConf asks ipconf for app's endpoints with a credential signed with secret, and returns the
// HTTP status (0: no answer).
func alIPConf(ctx context.Context, pl *nrPlatform, app, secret string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pl.ipconfURL+"/ip/list?app_id="+app+"&did=apps-live-probe", nil)
	if err != nil {
		return 0
	}
	cred, err := credential.MintHS256(app, "bench", secret, "apps-live-probe", "apps-live-probe", time.Now(), time.Hour)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// alLogin logs a device of app in at gw-1 with a gateway token, and reports whether it was let in.
func alLogin(ctx context.Context, pl *nrPlatform, signer *token.Signer, app string) bool {
	tok, _ := signer.Issue(app, "apps-live-probe", "apps-live-probe", time.Now(), time.Time{})
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Endpoints: pl.gwAddrs[:1], Token: tok, AppID: app, DID: "apps-live-probe", LoginTimeout: 2 * time.Second})
	if err != nil {
		return false
	}
	c.Close()
	return true
}
