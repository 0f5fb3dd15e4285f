package client

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// The header seqs of Login and Resume: the server echoes them, and they mean nothing else.
const (
	loginSeq  = 1
	resumeSeq = 1
)

// handshake makes a fresh socket a logged-in connection: Resume first when from is set, and Login
// on the same socket when the server cannot resume (ResumeAck 1208, §11.1 of docs/protocol.md).
func handshake(ctx context.Context, cfg *Config, nc net.Conn, br *bufio.Reader, token string, from *resumePoint) (protocol.LoginAck, bool, error) {
	if from != nil {
		body := (&protocol.Resume{AppID: cfg.AppID, DID: cfg.DID, UID: cfg.UID, Token: token, PrevConnID: from.connID, LastDownlink: from.lastDown}).Append(nil)
		ack, err := exchange(ctx, cfg, nc, br, protocol.SigResume, resumeSeq, body)
		if err == nil {
			return ack.LoginAck, true, nil
		}
		if code, _ := protocol.CodeOf(err); code != protocol.CodeResumeRejected || !ack.rejected {
			return protocol.LoginAck{}, false, fmt.Errorf("resuming conn %d: %w", from.connID, err)
		}
		cfg.Logger.Info("plato resume rejected, logging in", "prev_conn_id", from.connID, "err", err)
	}
	body := (&protocol.Login{AppID: cfg.AppID, DID: cfg.DID, UID: cfg.UID, Token: token, Platform: cfg.Platform}).Append(nil)
	ack, err := exchange(ctx, cfg, nc, br, protocol.SigLogin, loginSeq, body)
	return ack.LoginAck, false, err
}

// answer is a LoginAck or ResumeAck (the same layout); rejected marks a ResumeAck 1208, after
// which the socket stays open for a Login, unlike a Close 1208.
type answer struct {
	protocol.LoginAck
	rejected bool
}

// exchange sends Login or Resume and waits, within LoginTimeout, for its answer or a Close saying
// why not. A refusal is a *protocol.Error with the server's code; any other failure is a
// *handshakeFault.
func exchange(ctx context.Context, cfg *Config, nc net.Conn, br *bufio.Reader, sig protocol.Signal, seq uint64, body []byte) (answer, error) {
	deadline := time.Now().Add(cfg.LoginTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	// A past deadline wakes the blocked read when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	what := "login"
	if sig == protocol.SigResume {
		what = "resume"
	}
	if _, err := nc.Write(protocol.AppendFrame(nil, sig, 0, seq, body)); err != nil {
		return answer{}, &handshakeFault{fmt.Errorf("sending %s: %w", what, err)}
	}
	var buf []byte
	for {
		f, nbuf, err := protocol.ReadFrame(br, cfg.MaxBody, buf)
		buf = nbuf
		if err != nil {
			return answer{}, &handshakeFault{fmt.Errorf("waiting for %s ack: %w", what, err)}
		}
		switch {
		case f.Signal == protocol.SigLoginAck && sig == protocol.SigLogin, f.Signal == protocol.SigResumeAck && sig == protocol.SigResume:
			// The two acks share one layout.
			var ack protocol.ResumeAck
			if err := ack.Decode(f.Body); err != nil {
				return answer{}, &handshakeFault{fmt.Errorf("decoding %s ack: %w", what, err)}
			}
			a := answer{LoginAck: protocol.LoginAck(ack)}
			if ack.Code != protocol.CodeOK {
				a.rejected = sig == protocol.SigResume && ack.Code == protocol.CodeResumeRejected
				return a, &protocol.Error{Code: ack.Code, Msg: ack.Message}
			}
			if !stop() {
				return answer{}, &handshakeFault{fmt.Errorf("logging in: %w", ctx.Err())}
			}
			nc.SetDeadline(time.Time{})
			return a, nil
		case f.Signal == protocol.SigClose:
			var cl protocol.Close
			if err := cl.Decode(f.Body); err != nil {
				return answer{}, &handshakeFault{fmt.Errorf("decoding close: %w", err)}
			}
			return answer{}, &protocol.Error{Code: cl.Code, Msg: cl.Message}
		default:
			cfg.Logger.Debug("plato frame before "+what+" ack ignored", "frame", f.String())
		}
	}
}

// handshakeFault is a handshake that failed for want of a readable answer: a timeout, a reset, or
// bytes that are not Plato's (another service on the port). Even when it carries a code (1001 for a
// bad magic) it says nothing about the device, so the next endpoint may do better.
type handshakeFault struct{ err error }

func (e *handshakeFault) Error() string { return e.err.Error() }
func (e *handshakeFault) Unwrap() error { return e.err }
