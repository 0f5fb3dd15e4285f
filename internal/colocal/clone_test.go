package colocal

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// A copy equals its source and shares no mutable memory with it, whether the list goes through
// copyList (three elements and more) or the generated copy alone, and whatever the elements hold.
func TestCloneSharesNothingMutable(t *testing.T) {
	frame := func(i int64) *fleet.DownFrame {
		return &fleet.DownFrame{ConnId: i, Action: fleet.DownAction_SEND, Signal: 5, Flags: 1, Seq: i, Body: []byte{byte(i), 2, 3}, Did: "d", Track: true}
	}
	for _, n := range []int{0, 1, shareFrom - 1, shareFrom, 9} {
		deliver := &fleet.DeliverRequest{GatewayId: "gw", Proof: "p", Boot: "b", AcksInReply: true, Gone: []int64{1, 2}, Moved: []int64{3}}
		push := &fleet.PushRequest{StateId: "s", Proof: "p"}
		answer := &fleet.DeliverResponse{Restarted: true}
		for i := range int64(n) {
			deliver.Events = append(deliver.Events, &fleet.UpEvent{
				ConnId: i, Kind: fleet.UpKind_ADOPTED, Seq: i, Body: []byte{byte(i), 9}, AppId: "a", Did: "d",
				Sessions: []string{"s1", "s2"}, Unacked: []*fleet.DownFrame{frame(i)},
			})
			push.Frames = append(push.Frames, frame(i))
			answer.Acks = append(answer.Acks, frame(i))
		}
		if n > 1 {
			deliver.Events[1], push.Frames[1] = nil, nil // a nil element stays nil
		}
		checkClone(t, n, deliver, func() {
			deliver.Gone[0] = 100
			for _, e := range deliver.Events {
				if e != nil {
					e.Body[0], e.Sessions[0], e.Unacked[0].Body[0], e.Seq = 99, "x", 99, 99
				}
			}
			deliver.Events = append(deliver.Events[:0], &fleet.UpEvent{ConnId: 77})
		})
		checkClone(t, n, push, func() {
			for _, f := range push.Frames {
				if f != nil {
					f.Body[0], f.Seq = 99, 99
				}
			}
		})
		checkClone(t, n, answer, func() {
			for _, f := range answer.Acks {
				f.Body[0], f.ConnId = 99, 99
			}
		})
	}
}

// encoded is what the wire would carry of m: a snapshot that shares nothing with it.
func encoded(m interface {
	BLength() int
	FastWrite([]byte) int
}) []byte {
	b := make([]byte, m.BLength())
	return b[:m.FastWrite(b)]
}

// checkClone copies src, checks the copy equals it, lets change alter src, and checks the copy
// did not change with it.
func checkClone[T any, P interface {
	msg[T]
	BLength() int
	FastWrite([]byte) int
}](t *testing.T, n int, src P, change func()) {
	t.Helper()
	cp, err := clone[T, P](src)
	if err != nil {
		t.Fatalf("%d elements: %v", n, err)
	}
	if !reflect.DeepEqual(cp, src) {
		t.Fatalf("%d elements: the copy %+v differs from %+v", n, cp, src)
	}
	before := encoded(cp)
	change()
	if !bytes.Equal(encoded(cp), before) {
		t.Fatalf("%d elements: the copy changed with its source", n)
	}
}
