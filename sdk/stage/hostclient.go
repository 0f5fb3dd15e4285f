package stage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// hostClient is the Host a plugin's stage gets: every call travels back to the host over gRPC, on
// the HostCalls stream or unary (see hostclient_stream.go). Errors come back as
// "host <op>: <the host's message>" (see callError) either way.
type hostClient struct{ c hostAPI }

var _ Host = (*hostClient)(nil)

func (h *hostClient) Push(ctx context.Context, appID string, dids []string, payload []byte) (PushResult, error) {
	resp, err := h.c.Push(ctx, &pb.PushRequest{AppId: appID, Dids: dids, Payload: payload})
	if err != nil {
		return PushResult{}, hostError("push", err)
	}
	res := PushResult{MsgID: resp.GetMsgId()}
	if ts := resp.GetTargets(); len(ts) > 0 {
		res.Targets = make([]PushTarget, len(ts))
		for i, t := range ts {
			res.Targets[i] = PushTarget{DID: t.GetDid(), ConnID: t.GetConnId(), Status: uint8(t.GetStatus()), Seq: t.GetSeq()}
		}
	}
	return res, nil
}

func (h *hostClient) Resend(ctx context.Context, conn Conn, seq, msgID uint64, payload []byte) error {
	_, err := h.c.Resend(ctx, &pb.ResendRequest{Conn: connToPB(conn), Seq: seq, MsgId: msgID, Payload: payload})
	return hostError("resend", err)
}

func (h *hostClient) Undelivered(ctx context.Context, conn Conn, seq, msgID uint64, attempts int) error {
	_, err := h.c.Undelivered(ctx, &pb.UndeliveredRequest{Conn: connToPB(conn), Seq: seq, MsgId: msgID,
		Attempts: uint32(min(max(attempts, 0), math.MaxUint32))})
	return hostError("undelivered", err)
}

func (h *hostClient) Bind(ctx context.Context, appID, session string, dids []string) error {
	_, err := h.c.Bind(ctx, &pb.BindRequest{AppId: appID, Session: session, Dids: dids})
	return hostError("bind", err)
}

func (h *hostClient) Unbind(ctx context.Context, appID, session string, dids []string) error {
	_, err := h.c.Bind(ctx, &pb.BindRequest{AppId: appID, Session: session, Dids: dids, Unbind: true})
	return hostError("unbind", err)
}

func (h *hostClient) Sessions(ctx context.Context, conn Conn) ([]string, error) {
	resp, err := h.c.Sessions(ctx, &pb.SessionsRequest{Conn: connToPB(conn)})
	if err != nil {
		return nil, hostError("sessions", err)
	}
	return resp.GetSessions(), nil
}

func (h *hostClient) Join(ctx context.Context, conn Conn, sessions []string) error {
	_, err := h.c.Join(ctx, &pb.JoinRequest{Conn: connToPB(conn), Sessions: sessions})
	return hostError("join", err)
}

func (h *hostClient) SetTimer(ctx context.Context, appID, key string, d time.Duration, data []byte) error {
	_, err := h.c.Timer(ctx, &pb.TimerRequest{AppId: appID, Key: key, AfterMs: ceilMS(d), Data: data})
	return hostError("set timer", err)
}

func (h *hostClient) CancelTimer(ctx context.Context, appID, key string) error {
	_, err := h.c.Timer(ctx, &pb.TimerRequest{AppId: appID, Key: key, Cancel: true})
	return hostError("cancel timer", err)
}

func (h *hostClient) Get(ctx context.Context, appID, key string) ([]byte, bool, error) {
	resp, err := h.c.State(ctx, &pb.StateRequest{AppId: appID, Key: key, Op: stateGet})
	if err != nil {
		return nil, false, hostError("get", err)
	}
	v := resp.GetValue()
	if resp.GetFound() && v == nil {
		v = []byte{}
	}
	return v, resp.GetFound(), nil
}

func (h *hostClient) Put(ctx context.Context, appID, key string, value []byte, ttl time.Duration) error {
	_, err := h.c.State(ctx, &pb.StateRequest{AppId: appID, Key: key, Value: value, Op: statePut, TtlMs: ceilMS(ttl)})
	return hostError("put", err)
}

func (h *hostClient) Delete(ctx context.Context, appID, key string) error {
	_, err := h.c.State(ctx, &pb.StateRequest{AppId: appID, Key: key, Op: stateDelete})
	return hostError("delete", err)
}

// StateRequest.op values.
const (
	stateGet    = 0
	statePut    = 1
	stateDelete = 2
)

// ceilMS converts d to whole milliseconds for the wire, rounding a positive d up so that a short
// ttl or delay never becomes 0 ("forever" for a ttl).
func ceilMS(d time.Duration) int64 {
	if d <= 0 {
		return d.Milliseconds()
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func hostError(op string, err error) error { return callError("host "+op, err) }

// noHost is the Host of a stage whose host offered none (host_broker_id 0).
type noHost struct{}

var errNoHost = fmt.Errorf("stage host: %w", errors.ErrUnsupported)

func (noHost) Push(context.Context, string, []string, []byte) (PushResult, error) {
	return PushResult{}, errNoHost
}
func (noHost) Resend(context.Context, Conn, uint64, uint64, []byte) error   { return errNoHost }
func (noHost) Undelivered(context.Context, Conn, uint64, uint64, int) error { return errNoHost }
func (noHost) Bind(context.Context, string, string, []string) error         { return errNoHost }
func (noHost) Unbind(context.Context, string, string, []string) error       { return errNoHost }
func (noHost) Sessions(context.Context, Conn) ([]string, error)             { return nil, errNoHost }
func (noHost) Join(context.Context, Conn, []string) error                   { return errNoHost }
func (noHost) SetTimer(context.Context, string, string, time.Duration, []byte) error {
	return errNoHost
}
func (noHost) CancelTimer(context.Context, string, string) error { return errNoHost }
func (noHost) Get(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errNoHost
}
func (noHost) Put(context.Context, string, string, []byte, time.Duration) error { return errNoHost }
func (noHost) Delete(context.Context, string, string) error                     { return errNoHost }
