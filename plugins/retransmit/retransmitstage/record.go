package retransmitstage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// The stage keeps two kinds of records in the host's per-app state, both JSON:
//
//	inflight/<gateway>/<conn>/<seq>  a downlink awaiting its ACK (record); its timer has the same key
//	conn/<gateway>/<conn>            the seqs of that connection's records (index), for disconnects
//
// Nothing lives only in the plugin's memory, so a restarted plugin carries on where the last one
// stopped: the host keeps both the records and the timers.

// record is one downlink awaiting its ACK. It holds everything a resend needs, because a timer
// event carries only the app ID and the key.
type record struct {
	Conn     stage.Conn    `json:"conn"`
	Seq      uint64        `json:"seq"`
	MsgID    uint64        `json:"msg_id"`
	Payload  []byte        `json:"payload"`
	Attempts int           `json:"attempts"` // times written so far, the first send included
	Backoff  time.Duration `json:"backoff"`  // the wait the armed timer was set for, in ns
}

// connKey names a connection: gateway IDs are unique, conn IDs unique per gateway.
func connKey(c stage.Conn) string {
	return c.GatewayID + "/" + strconv.FormatUint(c.ConnID, 10)
}

func recordKey(c stage.Conn, seq uint64) string {
	return "inflight/" + connKey(c) + "/" + strconv.FormatUint(seq, 10)
}

func indexKey(c stage.Conn) string { return "conn/" + connKey(c) }

// connKeyOfRecord returns the connection part of a record key (the key a timer fires with).
func connKeyOfRecord(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "inflight/")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// store wraps the host's state for one app with the record encodings.
type store struct {
	host  stage.Host
	appID string
}

func (s store) getRecord(ctx context.Context, key string) (record, bool, error) {
	var r record
	b, ok, err := s.host.Get(ctx, s.appID, key)
	if err != nil || !ok {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return r, true, nil
}

func (s store) putRecord(ctx context.Context, key string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	return s.host.Put(ctx, s.appID, key, b, 0)
}

func (s store) getIndex(ctx context.Context, key string) ([]uint64, error) {
	b, ok, err := s.host.Get(ctx, s.appID, key)
	if err != nil || !ok {
		return nil, err
	}
	var seqs []uint64
	if err := json.Unmarshal(b, &seqs); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", key, err)
	}
	return seqs, nil
}

// putIndex writes seqs, or deletes the index when it is empty.
func (s store) putIndex(ctx context.Context, key string, seqs []uint64) error {
	if len(seqs) == 0 {
		return s.host.Delete(ctx, s.appID, key)
	}
	b, err := json.Marshal(seqs)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	return s.host.Put(ctx, s.appID, key, b, 0)
}

// addToIndex and removeFromIndex update a connection's index; the caller holds its lock.
func (s store) addToIndex(ctx context.Context, key string, seq uint64) error {
	seqs, err := s.getIndex(ctx, key)
	if err != nil {
		return err
	}
	if i, found := slices.BinarySearch(seqs, seq); !found {
		seqs = slices.Insert(seqs, i, seq)
	}
	return s.putIndex(ctx, key, seqs)
}

func (s store) removeFromIndex(ctx context.Context, key string, seq uint64) error {
	seqs, err := s.getIndex(ctx, key)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(seqs, seq)
	if !found {
		return nil
	}
	return s.putIndex(ctx, key, slices.Delete(seqs, i, i+1))
}
