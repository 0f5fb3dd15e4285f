// Package retransmitstage is Plato's reference retransmit stage: it makes downlinks at-least-once.
//
// On each downlink it records the message in the host's per-app state and arms a host timer; the
// device's DownlinkAck deletes the record and cancels the timer. When a timer fires first, the
// stage resends the downlink (same seq and msg ID, retransmit flag set) and re-arms the timer with
// twice the wait, up to max_backoff; after max_attempts writes it tells the business server the
// message was undelivered. A disconnect reports every downlink still in flight on that connection
// as undelivered. All state and timers live in the host, so a plugin restart loses nothing.
//
// The stage only tracks: every downlink continues. Put it last among the stages that handle
// downlink, so it never tracks a downlink a later stage refuses. Downlinks whose QoS is
// AtMostOnce (see the qosroute stage) are left alone; all others, QoSDefault included, are tracked.
//
// The stage runs as a plugin binary (plugins/retransmit) or, trusted, in the host's process
// (plugin: builtin:retransmit); both use New.
package retransmitstage

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/sdk/stage"
)

// Name and Version are what Info reports.
const (
	Name    = "retransmit"
	Version = "1.0.0"
)

// New returns a retransmit stage; it does nothing until Init has configured it.
func New() stage.Stage { return &Retransmit{} }

// Retransmit is the stage. Its handlers are safe for concurrent use.
type Retransmit struct {
	cfg atomic.Pointer[settings]
	// locks serialise the read-modify-write of one connection's records: a connection's own
	// events arrive in order, but its timers fire concurrently with them.
	locks [64]sync.Mutex
}

type settings struct {
	Config
	host stage.Host
	log  *slog.Logger
}

var (
	_ stage.Stage              = (*Retransmit)(nil)
	_ stage.DownlinkHandler    = (*Retransmit)(nil)
	_ stage.DownlinkAckHandler = (*Retransmit)(nil)
	_ stage.DisconnectHandler  = (*Retransmit)(nil)
	_ stage.TimerHandler       = (*Retransmit)(nil)
)

// Info names the stage.
func (r *Retransmit) Info() stage.Info { return stage.Info{Name: Name, Version: Version} }

// Init validates the config (see Config).
func (r *Retransmit) Init(_ context.Context, req stage.InitRequest) error {
	c, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	if req.Host == nil {
		return errNoHost
	}
	log := req.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r.cfg.Store(&settings{Config: c, host: req.Host, log: log})
	return nil
}

var errNoHost = errors.New("retransmit: InitRequest has no Host: the stage keeps its state in the host")

func (r *Retransmit) lock(connKey string) func() {
	h := fnv.New32a()
	h.Write([]byte(connKey))
	m := &r.locks[h.Sum32()%uint32(len(r.locks))]
	m.Lock()
	return m.Unlock
}

// OnDownlink records the downlink and arms its timer. The downlink always continues: when the
// record cannot be written the message still goes out once, and the failure is logged.
//
// An AtMostOnce downlink is not tracked at all: the push's route chose to send it once, so there
// is nothing to resend and nothing to report. Every other QoS is tracked, QoSDefault included,
// because hosts and pushes that predate QoS mean at least once.
func (r *Retransmit) OnDownlink(ctx context.Context, ev *stage.DownlinkEvent) stage.Reply {
	s := r.cfg.Load()
	if s == nil || ev.QoS == stage.AtMostOnce {
		return stage.Reply{}
	}
	key := recordKey(ev.Conn, ev.Seq)
	defer r.lock(connKey(ev.Conn))()
	st := store{host: s.host, appID: ev.Conn.AppID}
	rec := record{
		Conn:     ev.Conn,
		Seq:      ev.Seq,
		MsgID:    ev.MsgID,
		Payload:  ev.Payload,
		Attempts: 1,
		Backoff:  s.InitialBackoff,
	}
	if err := st.putRecord(ctx, key, rec); err != nil {
		s.log.Error("downlink not tracked: it will not be resent", "key", key, "msg_id", ev.MsgID, "err", err)
		return stage.Reply{}
	}
	if err := st.addToIndex(ctx, indexKey(ev.Conn), ev.Seq); err != nil {
		s.log.Warn("indexing downlink: a disconnect may not report it", "key", key, "err", err)
	}
	if err := s.host.SetTimer(ctx, ev.Conn.AppID, key, rec.Backoff, nil); err != nil {
		s.log.Error("arming resend timer: the downlink will not be resent", "key", key, "err", err)
	}
	return stage.Reply{}
}

// OnDownlinkAck forgets the acknowledged downlink and cancels its timer.
func (r *Retransmit) OnDownlinkAck(ctx context.Context, ev *stage.DownlinkAckEvent) stage.Reply {
	s := r.cfg.Load()
	if s == nil {
		return stage.Reply{}
	}
	key := recordKey(ev.Conn, ev.Seq)
	defer r.lock(connKey(ev.Conn))()
	r.forget(ctx, s, ev.Conn.AppID, key, indexKey(ev.Conn), ev.Seq)
	return stage.Reply{}
}

// OnTimer resends the downlink whose timer fired, or gives up on it after max_attempts.
func (r *Retransmit) OnTimer(ctx context.Context, ev *stage.TimerEvent) stage.Reply {
	s := r.cfg.Load()
	if s == nil {
		return stage.Reply{}
	}
	ck, ok := connKeyOfRecord(ev.Key)
	if !ok {
		s.log.Warn("timer with a key this stage does not set", "key", ev.Key)
		return stage.Reply{}
	}
	defer r.lock(ck)()
	st := store{host: s.host, appID: ev.AppID}
	rec, found, err := st.getRecord(ctx, ev.Key)
	if err != nil {
		// Try again later rather than lose the message to a hiccup of the host's state.
		s.log.Error("reading in-flight downlink", "key", ev.Key, "err", err)
		if err := s.host.SetTimer(ctx, ev.AppID, ev.Key, s.InitialBackoff, nil); err != nil {
			s.log.Error("re-arming resend timer", "key", ev.Key, "err", err)
		}
		return stage.Reply{}
	}
	if !found {
		return stage.Reply{} // ACKed, or reported on disconnect, in the meantime
	}
	if rec.Attempts >= s.MaxAttempts {
		if err := s.host.Undelivered(ctx, rec.Conn, rec.Seq, rec.MsgID, rec.Attempts); err != nil {
			s.log.Error("reporting undelivered downlink", "key", ev.Key, "msg_id", rec.MsgID, "err", err)
		}
		r.forget(ctx, s, ev.AppID, ev.Key, indexKey(rec.Conn), rec.Seq)
		return stage.Reply{}
	}
	// A failed resend (the connection is going away, the host is busy) still uses up an attempt,
	// so a downlink whose disconnect this stage never saw is reported after max_attempts.
	if err := s.host.Resend(ctx, rec.Conn, rec.Seq, rec.MsgID, rec.Payload); err != nil {
		s.log.Warn("resending downlink", "key", ev.Key, "msg_id", rec.MsgID, "attempt", rec.Attempts+1, "err", err)
	}
	rec.Attempts++
	rec.Backoff = min(rec.Backoff*2, s.MaxBackoff)
	if rec.Backoff <= 0 {
		rec.Backoff = s.InitialBackoff
	}
	if err := st.putRecord(ctx, ev.Key, rec); err != nil {
		s.log.Error("updating in-flight downlink", "key", ev.Key, "err", err)
	}
	if err := s.host.SetTimer(ctx, ev.AppID, ev.Key, rec.Backoff, nil); err != nil {
		s.log.Error("re-arming resend timer", "key", ev.Key, "err", err)
	}
	return stage.Reply{}
}

// OnDisconnect reports every downlink still in flight on the connection as undelivered.
func (r *Retransmit) OnDisconnect(ctx context.Context, ev *stage.DisconnectEvent) stage.Reply {
	s := r.cfg.Load()
	if s == nil {
		return stage.Reply{}
	}
	defer r.lock(connKey(ev.Conn))()
	st := store{host: s.host, appID: ev.Conn.AppID}
	ik := indexKey(ev.Conn)
	seqs, err := st.getIndex(ctx, ik)
	if err != nil {
		s.log.Error("reading in-flight index: the connection's timers report them instead", "key", ik, "err", err)
		return stage.Reply{}
	}
	for _, seq := range seqs {
		key := recordKey(ev.Conn, seq)
		rec, found, err := st.getRecord(ctx, key)
		if err != nil {
			s.log.Error("reading in-flight downlink", "key", key, "err", err)
			continue // its timer is still armed and reports it after max_attempts
		}
		if !found {
			continue
		}
		if err := s.host.Undelivered(ctx, rec.Conn, rec.Seq, rec.MsgID, rec.Attempts); err != nil {
			s.log.Error("reporting undelivered downlink", "key", key, "msg_id", rec.MsgID, "err", err)
		}
		if err := s.host.CancelTimer(ctx, ev.Conn.AppID, key); err != nil {
			s.log.Warn("cancelling resend timer", "key", key, "err", err)
		}
		if err := s.host.Delete(ctx, ev.Conn.AppID, key); err != nil {
			s.log.Warn("deleting in-flight downlink", "key", key, "err", err)
		}
	}
	if err := s.host.Delete(ctx, ev.Conn.AppID, ik); err != nil {
		s.log.Warn("deleting in-flight index", "key", ik, "err", err)
	}
	return stage.Reply{}
}

// forget deletes a record, its timer and its index entry; the caller holds the connection's lock.
func (r *Retransmit) forget(ctx context.Context, s *settings, appID, key, ik string, seq uint64) {
	if err := s.host.CancelTimer(ctx, appID, key); err != nil {
		s.log.Warn("cancelling resend timer", "key", key, "err", err)
	}
	if err := s.host.Delete(ctx, appID, key); err != nil {
		s.log.Warn("deleting in-flight downlink", "key", key, "err", err)
	}
	st := store{host: s.host, appID: appID}
	if err := st.removeFromIndex(ctx, ik, seq); err != nil {
		s.log.Warn("updating in-flight index", "key", ik, "err", err)
	}
}
