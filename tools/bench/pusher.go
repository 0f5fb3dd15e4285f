package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/connpool"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
)

// pushTarget is one device a push goes to.
type pushTarget struct {
	idx int
	did string
}

// pusher is the business side of downlink and broadcast: Plato's Push, or the echo server's
// push connection for the baseline.
type pusher interface {
	// push sends payload to targets and returns, per target, "" when it went out or why not
	// ("push OFFLINE", "push error: timeout": the outcome of a failed call is unknown).
	push(ctx context.Context, targets []pushTarget, payload []byte) []string
	close()
}

// pushConcurrency bounds the push calls one process has in flight: each needs a connection to the
// state server, and beyond a hundred or so they only queue there.
const pushConcurrency = 128

// pushTimeout bounds one push call.
const pushTimeout = 5 * time.Second

// kitexPusher pushes through Plato's State service, as a business server does.
type kitexPusher struct {
	caller *api.Caller
	cli    apiservice.Client
}

func newKitexPusher(addr, appID, key string) (*kitexPusher, error) {
	opts := append(rpc.Client(addr, pushTimeout),
		// Kitex keeps 10 idle connections per address by default; the bench's concurrent pushes
		// would then open and close connections all the time and measure that instead.
		client.WithLongConnection(connpool.IdleConfig{
			MaxIdlePerAddress: pushConcurrency, MaxIdleGlobal: pushConcurrency, MaxIdleTimeout: time.Minute,
		}))
	cli, err := apiservice.NewClient("plato", opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the Plato RPC client for %s: %w", addr, err)
	}
	return &kitexPusher{caller: &api.Caller{AppId: appID, Key: key}, cli: cli}, nil
}

// maxPushTargets is Plato's limit of dids and uids per Push or Bind call (core/state.MaxNamedTargets).
const maxPushTargets = 10_000

func (p *kitexPusher) push(ctx context.Context, targets []pushTarget, payload []byte) []string {
	return pushInChunks(targets, func(dids, res []string) {
		resp, err := p.cli.Push(ctx, &api.PushRequest{Caller: p.caller, Dids: dids, Payload: payload})
		if err != nil {
			for i := range res {
				res[i] = "push error: " + rpcErrClass(err)
			}
			return
		}
		for i := range res {
			res[i] = "push no answer"
			if i < len(resp.Targets) {
				if st := resp.Targets[i].Status; st != api.PushStatus_SENT && st != api.PushStatus_ACKED {
					res[i] = "push " + st.String()
				} else {
					res[i] = ""
				}
			}
		}
	})
}

// pushInChunks pushes to targets as concurrent calls of at most maxPushTargets dids each: call
// pushes to dids and writes each one's failure ("" for none) into res, in order. It returns the
// failures of every target.
func pushInChunks(targets []pushTarget, call func(dids, res []string)) []string {
	out := make([]string, len(targets))
	var wg sync.WaitGroup
	for lo := 0; lo < len(targets); lo += maxPushTargets {
		chunk := targets[lo:min(lo+maxPushTargets, len(targets))]
		res := out[lo : lo+len(chunk)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			dids := make([]string, len(chunk))
			for i, t := range chunk {
				dids[i] = t.did
			}
			call(dids, res)
		}()
	}
	wg.Wait()
	return out
}

// rpcErrClass shortens a Kitex error to a few words, so failures aggregate into a few counters.
func rpcErrClass(err error) string {
	var se *api.PlatoError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("code %d", se.Code)
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "timeout"):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func (p *kitexPusher) close() {}
