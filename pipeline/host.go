package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// stageHost is the stage.Host one stage instance is given at Init. Push, Resend, Undelivered,
// Bind, Unbind, Sessions and Join go to the state server's Host; timers and state are served here, in the stage's
// scope, so two stages' keys never collide and survive a restart of the stage's process.
//
// A stage of an app's own pipeline may act for that app only; a stage of the default pipeline
// serves many apps and may act for any.
type stageHost struct {
	p  *Pipelines
	in *instance
}

var _ stage.Host = (*stageHost)(nil)

func (h *stageHost) check(appID string) error {
	if h.in.pipeline == defaultPipeline || appID == h.in.pipeline {
		return nil
	}
	return fmt.Errorf("stage %s of the %s pipeline may not act for app %q", h.in.name, h.in.pipeline, appID)
}

func (h *stageHost) base() (stage.Host, error) {
	if h.p.base == nil {
		return nil, errNoHost
	}
	return h.p.base, nil
}

func (h *stageHost) Push(ctx context.Context, appID string, dids []string, payload []byte) (stage.PushResult, error) {
	if err := h.check(appID); err != nil {
		return stage.PushResult{}, err
	}
	b, err := h.base()
	if err != nil {
		return stage.PushResult{}, err
	}
	return b.Push(ctx, appID, dids, payload)
}

func (h *stageHost) Resend(ctx context.Context, conn stage.Conn, seq, msgID uint64, payload []byte) error {
	if err := h.check(conn.AppID); err != nil {
		return err
	}
	b, err := h.base()
	if err != nil {
		return err
	}
	return b.Resend(ctx, conn, seq, msgID, payload)
}

func (h *stageHost) Undelivered(ctx context.Context, conn stage.Conn, seq, msgID uint64, attempts int) error {
	if err := h.check(conn.AppID); err != nil {
		return err
	}
	b, err := h.base()
	if err != nil {
		return err
	}
	return b.Undelivered(ctx, conn, seq, msgID, attempts)
}

func (h *stageHost) Bind(ctx context.Context, appID, session string, dids []string) error {
	if err := h.check(appID); err != nil {
		return err
	}
	b, err := h.base()
	if err != nil {
		return err
	}
	return b.Bind(ctx, appID, session, dids)
}

func (h *stageHost) Unbind(ctx context.Context, appID, session string, dids []string) error {
	if err := h.check(appID); err != nil {
		return err
	}
	b, err := h.base()
	if err != nil {
		return err
	}
	return b.Unbind(ctx, appID, session, dids)
}

func (h *stageHost) Sessions(ctx context.Context, conn stage.Conn) ([]string, error) {
	if err := h.check(conn.AppID); err != nil {
		return nil, err
	}
	b, err := h.base()
	if err != nil {
		return nil, err
	}
	return b.Sessions(ctx, conn)
}

func (h *stageHost) Join(ctx context.Context, conn stage.Conn, sessions []string) error {
	if err := h.check(conn.AppID); err != nil {
		return err
	}
	b, err := h.base()
	if err != nil {
		return err
	}
	return b.Join(ctx, conn, sessions)
}

func (h *stageHost) SetTimer(_ context.Context, appID, key string, d time.Duration, data []byte) error {
	if err := h.check(appID); err != nil {
		return err
	}
	return h.p.setTimer(h.in.scope, appID, key, d, data)
}

func (h *stageHost) CancelTimer(_ context.Context, appID, key string) error {
	if err := h.check(appID); err != nil {
		return err
	}
	h.p.cancelTimer(h.in.scope, appID, key)
	return nil
}

func (h *stageHost) Get(_ context.Context, appID, key string) ([]byte, bool, error) {
	if err := h.check(appID); err != nil {
		return nil, false, err
	}
	v, ok := h.in.scope.kv.get(appID, key)
	return v, ok, nil
}

func (h *stageHost) Put(_ context.Context, appID, key string, value []byte, ttl time.Duration) error {
	if err := h.check(appID); err != nil {
		return err
	}
	return h.in.scope.kv.put(appID, key, value, ttl)
}

func (h *stageHost) Delete(_ context.Context, appID, key string) error {
	if err := h.check(appID); err != nil {
		return err
	}
	h.in.scope.kv.delete(appID, key)
	return nil
}
