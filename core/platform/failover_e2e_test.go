package platform_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestStateServerShutdownMovesItsConnections stops one of two state servers while devices are
// connected, bound to a session, with at-least-once downlinks they have not ACKed. Their gateway
// moves them to the other state server (ADR 0009): same sockets, same sessions, the unACKed
// downlinks sent again, uplink seqs and downlink seqs carried on, no event for the business.
func TestStateServerShutdownMovesItsConnections(t *testing.T) {
	biz := platformtest.StartBusiness(t)
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	front := platformtest.Start(t, cfg, platform.RoleNATS, platform.RoleGateway)
	states := make([]*platform.Platform, 2)
	for i := range states {
		c := platformtest.Config(t)
		platformtest.SetBusiness(&c, biz.Addr)
		c.NATS.URL = front.NATS.ClientURL()
		c.State.ID = fmt.Sprintf("state-%d", i+1)
		c.Admin.Addr = ""
		states[i] = platformtest.Start(t, c, platform.RoleState)
	}
	poll.Until(t, "the gateway to see both state servers", func() bool { return len(front.Gateway.StateServers()) == 2 })
	signer := mustSigner(t, platformtest.Secret)
	api2 := platformtest.StateClient(t, states[1].State.Addr())
	caller := platformtest.Caller("demo")
	ctx := context.Background()

	const n = 12
	devs := make([]*rawConn, n)
	dids := make([]string, n)
	for i := range devs {
		dids[i] = fmt.Sprintf("dev-%02d", i)
		devs[i] = rawDial(t, front.Gateway.Addr())
		devs[i].login(signer, dids[i])
		devs[i].send(protocol.SigUplink, 1, []byte("one"))
		if f := devs[i].next(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 {
			t.Fatalf("%s: uplink answer %s", dids[i], f)
		}
	}
	if _, err := api2.Bind(ctx, &api.BindRequest{Caller: caller, Session: "crew", Dids: dids}); err != nil {
		t.Fatal(err)
	}
	moving := states[0].State.SessionMembers("demo", "crew")
	if len(moving) == 0 || len(moving) == n {
		t.Fatalf("state-1 holds %d of %d devices; the test needs some on each", len(moving), n)
	}
	msgIDs := map[string]int64{}
	for i, did := range dids {
		resp, err := api2.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("unacked"), Qos: api.QoS_AT_LEAST_ONCE})
		if err != nil || resp.Targets[0].Status != api.PushStatus_SENT {
			t.Fatalf("push to %s: %+v %v", did, resp, err)
		}
		msgIDs[did] = resp.MsgId
		if f := devs[i].next(); f.Signal != protocol.SigDownlink || f.Seq != 1 {
			t.Fatalf("%s: got %s, want downlink seq 1", did, f)
		}
		// Not ACKed.
	}

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := states[0].State.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for i, did := range dids {
		if !slices.Contains(moving, did) {
			continue
		}
		// The downlink it never ACKed comes again from the new state server, flagged.
		msgs, retransmit := devs[i].downlinks(1)
		if msgs[1] != uint64(msgIDs[did]) || !retransmit[1] {
			t.Errorf("%s after the move: %v %v, want msg %d again on seq 1, flagged", did, msgs, retransmit, msgIDs[did])
		}
	}
	poll.Until(t, "every device in state-2's session index", func() bool { return len(states[1].State.SessionMembers("demo", "crew")) == n })
	online, err := api2.Online(ctx, &api.OnlineRequest{Caller: caller, Session: "crew"})
	if err != nil || len(online.Devices) != n {
		t.Fatalf("online in crew after the move: %+v %v", online, err)
	}
	for i, did := range dids {
		// The uplink seq carries on: 1 again is a duplicate, 2 is new.
		devs[i].send(protocol.SigUplink, 1, []byte("one"))
		devs[i].send(protocol.SigUplink, 2, []byte("two"))
		for _, want := range []protocol.Code{protocol.CodeDuplicate, 0} {
			f := devs[i].next()
			var a protocol.Ack
			if f.Signal != protocol.SigUplinkAck || a.Decode(f.Body) != nil || a.Code != want {
				t.Fatalf("%s: %s %+v, want UplinkAck %d", did, f, a, want)
			}
		}
		// The downlink seq carries on, and a session push reaches every device.
		resp, err := api2.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("next"), Qos: api.QoS_AT_LEAST_ONCE})
		if err != nil || resp.Targets[0].Seq != 2 {
			t.Fatalf("push to %s after the move: %+v %v, want seq 2", did, resp, err)
		}
		devs[i].downlinks(2)
	}
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != n {
		t.Errorf("%d CONNECTED events, want %d: nobody logged in again", c, n)
	}
	if d := len(biz.Events(api.EventKind_DISCONNECTED, "")); d != 0 {
		t.Errorf("%d DISCONNECTED events, but every connection lives on", d)
	}
	i := slices.Index(dids, moving[0])
	devs[i].send(protocol.SigClose, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil))
	if ev := biz.WaitEvents(t, api.EventKind_DISCONNECTED, moving[0], 1)[0]; ev.Reason != int32(protocol.CodeClientClose) {
		t.Errorf("DISCONNECTED %+v of a moved device that left", ev)
	}
}
