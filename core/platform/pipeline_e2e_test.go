package platform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// pipelineYAML is the reference pipeline with the test's token secret and quick retransmits. Its
// deny list names no device of these tests: it makes the auth stage act on uplinks (it skips them
// under the shipped config: ActsOn), so uplinks go through the plugin, as these tests mean.
func pipelineYAML(authBin, retransmitBin, extra string) string {
	return fmt.Sprintf(`version: 1
stages:
  - name: auth
    plugin: %s
    signals: [login, uplink]
    timeout: 2s
    on_failure: fail_closed
    config:
      token_secret: %q
      acl: {uplink: allow}
      deny_dids: [nobody-in-these-tests]
  - name: retransmit
    plugin: %s
    signals: [retransmit]
    timeout: 2s
    on_failure: fail_open
    config: {initial_backoff: 300ms, max_backoff: 600ms, max_attempts: 3}
%s`, authBin, platformtest.Secret, retransmitBin, extra)
}

type pipelinePlatform struct {
	*platform.Platform
	biz     *platformtest.Business
	dir     string
	auth    string
	retrans string
}

func startWithPipeline(t *testing.T, extra string) *pipelinePlatform {
	t.Helper()
	pp := &pipelinePlatform{
		dir:     t.TempDir(),
		auth:    platformtest.BuildPlugin(t, "plugins/auth"),
		retrans: platformtest.BuildPlugin(t, "plugins/retransmit"),
	}
	pp.writeDefault(t, pipelineYAML(pp.auth, pp.retrans, extra))
	p, biz := startAll(t, func(c *config.Config) {
		c.Pipeline.Dir = pp.dir
		c.Pipeline.PluginDir = filepath.Dir(pp.auth)
	})
	pp.Platform, pp.biz = p, biz
	return pp
}

func (pp *pipelinePlatform) writeDefault(t *testing.T, body string) {
	t.Helper()
	// Write and rename, as editors do, so the watcher never reads half a file.
	tmp := filepath.Join(pp.dir, ".default.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(pp.dir, "default.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineCarriesLoginUplinkDownlink(t *testing.T) {
	pp := startWithPipeline(t, "")
	alice := dial(t, pp.Platform, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := alice.Send(ctx, []byte("through the pipeline")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if ups := pp.biz.WaitEvents(t, api.EventKind_UPLINK, "alice", 1); string(ups[0].Payload) != "through the pipeline" {
		t.Fatalf("business got %q", ups[0].Payload)
	}
	sc := platformtest.StateClient(t, pp.State.Addr())
	resp, err := sc.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"alice"}, Payload: []byte("down"), WaitAck: true, TimeoutMs: 10000})
	if err != nil || resp.Targets[0].Status != api.PushStatus_ACKED {
		t.Fatalf("push: %v %+v", err, resp)
	}
	if m := <-alice.Messages(); string(m.Payload) != "down" {
		t.Fatalf("alice got %q", m.Payload)
	}
}

func TestPipelineAuthStageRefusesWhatTheGatewayLetThrough(t *testing.T) {
	// The gateway's token gate and the auth stage share the secret here; a stage ACL is what the
	// gateway cannot do: deny uplinks for this pipeline.
	pp := startWithPipeline(t, "")
	pp.writeDefault(t, strings.Replace(pipelineYAML(pp.auth, pp.retrans, ""), "acl: {uplink: allow}", "acl: {uplink: deny}", 1))
	c := dial(t, pp.Platform, "bob")
	poll.Within(t, 20*time.Second, "the reloaded ACL to refuse uplinks", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, _ := protocol.CodeOf(c.Send(ctx, []byte("x")))
		return code == protocol.CodeForbidden
	})
}

func TestRetransmitResendsUntilACKedThenReportsUndelivered(t *testing.T) {
	pp := startWithPipeline(t, "")
	signer := mustSigner(t, platformtest.Secret)
	c := rawDial(t, pp.Gateway.Addr())
	if ack := c.login(signer, "carol"); ack.Code != protocol.CodeOK {
		t.Fatalf("login: %+v", ack)
	}
	sc := platformtest.StateClient(t, pp.State.Addr())
	resp, err := sc.Push(context.Background(), &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"carol"}, Payload: []byte("again")})
	if err != nil || resp.Targets[0].Status != api.PushStatus_SENT {
		t.Fatalf("push: %v %+v", err, resp)
	}
	// Never ACK: the first copy, then retransmissions of the same seq with the flag set.
	var copies []protocol.Frame
	for len(copies) < 3 {
		f := c.next()
		if f.Signal == protocol.SigDownlink {
			copies = append(copies, f)
		}
	}
	for i, f := range copies {
		if f.Seq != copies[0].Seq {
			t.Fatalf("copy %d has seq %d, want %d", i, f.Seq, copies[0].Seq)
		}
		if retrans := f.Flags&protocol.FlagRetransmit != 0; retrans != (i > 0) {
			t.Fatalf("copy %d retransmit flag %v", i, retrans)
		}
	}
	evs := pp.biz.WaitEvents(t, api.EventKind_UNDELIVERED, "carol", 1)
	if evs[0].MsgId != resp.MsgId || evs[0].Seq != int64(copies[0].Seq) {
		t.Fatalf("UNDELIVERED %+v, want msg %d seq %d", evs[0], resp.MsgId, copies[0].Seq)
	}

	// An ACKed downlink is not sent again.
	resp, _ = sc.Push(context.Background(), &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"carol"}, Payload: []byte("once")})
	for {
		f := c.next()
		if f.Signal == protocol.SigDownlink && f.Seq == uint64(resp.Targets[0].Seq) {
			c.send(protocol.SigDownlinkAck, f.Seq, nil)
			break
		}
	}
	c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	for {
		f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
		if err != nil {
			break // the deadline: nothing more came
		}
		if f.Signal == protocol.SigDownlink && f.Seq == uint64(resp.Targets[0].Seq) {
			t.Fatalf("an ACKed downlink was sent again: %s", f)
		}
	}
}

// sendUntilAccepted retries an uplink with fresh sequence numbers until the business has it.
func sendUntilAccepted(ctx context.Context, c *client.Client, payload []byte) (failures int, err error) {
	for {
		err := c.Send(ctx, payload)
		if err == nil {
			return failures, nil
		}
		if ctx.Err() != nil {
			return failures, err
		}
		if code, ok := protocol.CodeOf(err); ok && code != protocol.CodePipelineFailed {
			return failures, err
		}
		failures++
		time.Sleep(50 * time.Millisecond)
	}
}

func TestKilledPluginLosesNothingUnderFailClosed(t *testing.T) {
	pp := startWithPipeline(t, "")
	c := dial(t, pp.Platform, "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var killed sync.Once
	failures := 0
	const n = 200
	for i := range n {
		if i == 50 {
			killed.Do(func() {
				pids := platformtest.PIDsOf(pp.auth)
				if len(pids) == 0 {
					t.Fatal("no auth plugin process found")
				}
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
		}
		f, err := sendUntilAccepted(ctx, c, fmt.Appendf(nil, "m%03d", i))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		failures += f
	}
	ups := pp.biz.Events(api.EventKind_UPLINK, "dave")
	if len(ups) != n {
		t.Fatalf("business has %d uplinks, want %d", len(ups), n)
	}
	for i, ev := range ups {
		if want := fmt.Sprintf("m%03d", i); string(ev.Payload) != want {
			t.Fatalf("uplink %d is %q, want %q: lost or reordered", i, ev.Payload, want)
		}
	}
	poll.Within(t, 20*time.Second, "the auth plugin to be restarted", func() bool {
		return len(platformtest.PIDsOf(pp.auth)) > 0
	})
	t.Logf("%d sends were refused with 1306 while the plugin was down, each retried", failures)
}

func TestHotReloadUnderTrafficDropsAndReordersNothing(t *testing.T) {
	pp := startWithPipeline(t, "")
	c := dial(t, pp.Platform, "erin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = 300
	errs := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.Send(ctx, fmt.Appendf(nil, "r%03d", i)); err != nil {
				errs <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		errs <- nil
	}()
	// Reload the pipeline several times while messages flow: each reload changes the auth
	// stage's config, so a new auth process takes over from the old one.
	before := platformtest.PIDsOf(pp.auth)
	for i := range 4 {
		time.Sleep(100 * time.Millisecond)
		body := pipelineYAML(pp.auth, pp.retrans, "")
		if i%2 == 1 { // the last write differs from the start, however the watcher coalesces them
			body = strings.Replace(body, "acl: {uplink: allow}", "acl: {uplink: allow, heartbeat: allow}", 1)
		}
		pp.writeDefault(t, body)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 20*time.Second, "a new auth process after the reloads", func() bool {
		after := platformtest.PIDsOf(pp.auth)
		return len(after) == 1 && len(before) == 1 && after[0] != before[0]
	})
	ups := pp.biz.Events(api.EventKind_UPLINK, "erin")
	if len(ups) != n {
		t.Fatalf("business has %d uplinks, want %d", len(ups), n)
	}
	for i, ev := range ups {
		if want := fmt.Sprintf("r%03d", i); string(ev.Payload) != want {
			t.Fatalf("uplink %d is %q, want %q", i, ev.Payload, want)
		}
	}
}

func TestBadPipelineYAMLKeepsTheRunningPipeline(t *testing.T) {
	pp := startWithPipeline(t, "")
	c := dial(t, pp.Platform, "frank")
	pp.writeDefault(t, "version: 1\nstages:\n  - name: auth\n    plugin: nowhere\n    signals: [login, telepathy]\n")
	err := pp.Pipelines.Reload("default")
	if err == nil {
		t.Fatal("a bad pipeline was accepted")
	}
	for _, want := range []string{"default.yaml", "telepathy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reload error does not mention %s: %v", want, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte("still flowing")); err != nil {
		t.Fatalf("send after a bad reload: %v", err)
	}
}

// TestAPluginStartedLaterHoldsNoDeviceSocket: a plugin relaunched while devices are connected must
// not inherit their sockets (netpoll accepts them without close-on-exec). If it did, a device the
// gateway closes would get its Close and then silence: the plugin would hold the socket open.
func TestAPluginStartedLaterHoldsNoDeviceSocket(t *testing.T) {
	pp := startWithPipeline(t, "")
	signer := mustSigner(t, platformtest.Secret)
	first := rawDial(t, pp.Gateway.Addr())
	first.login(signer, "fiona")
	old := platformtest.PIDsOf(pp.auth)
	if len(old) == 0 {
		t.Fatal("no auth plugin process found")
	}
	for _, pid := range old {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	poll.Within(t, 20*time.Second, "the auth plugin to be relaunched", func() bool {
		pids := platformtest.PIDsOf(pp.auth)
		return len(pids) > 0 && !slices.Contains(old, pids[0])
	})
	// The same did logging in again replaces the first connection, which the gateway closes.
	var second *rawConn
	poll.Within(t, 20*time.Second, "a login through the relaunched plugin", func() bool {
		second = rawDial(t, pp.Gateway.Addr())
		tok, _ := signer.Issue("demo", "fiona", "fiona", time.Now(), time.Time{})
		second.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: "fiona", UID: "fiona", Token: tok}).Append(nil))
		f := second.next()
		var ack protocol.LoginAck
		return f.Signal == protocol.SigLoginAck && ack.Decode(f.Body) == nil && ack.Code == 0
	})
	first.expectClose(protocol.CodeReplaced)
}
