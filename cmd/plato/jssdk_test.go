package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/protocol"
)

// The JS SDK (sdk/js) is tested by its own node tests, run here against a real platform: the
// processes of the plato binary, with a control endpoint through which the node tests ask this
// test for credentials, pushes, the business's events and a gateway restart.

var (
	jsOnce  sync.Once
	jsDir   string
	jsErr   error
	jsNodeV string
)

// jsSDK installs what the JS tests need when it is missing (scripts/install-js-deps: Debian's
// nodejs, npm and chromium), then `npm ci` and `npm run build` in sdk/js when what they made is
// not current (prepareJS), once per test run.
func jsSDK(t *testing.T) string {
	t.Helper()
	jsOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			jsErr = err
			return
		}
		if _, err := exec.LookPath("node"); err != nil || !hasCmd("npm") || chromiumPath() == "" {
			out, err := exec.Command(filepath.Join(root, "scripts/install-js-deps")).CombinedOutput()
			if err != nil {
				jsErr = fmt.Errorf("installing Node, npm and Chromium with scripts/install-js-deps (as root, or install them yourself: apt-get install nodejs npm chromium): %v\n%s", err, out)
				return
			}
		}
		v, err := exec.Command("node", "--version").Output()
		if err != nil {
			jsErr = fmt.Errorf("node --version: %v", err)
			return
		}
		jsNodeV = strings.TrimSpace(string(v))
		if major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(jsNodeV, "v"), ".", 2)[0]); major < 18 {
			jsErr = fmt.Errorf("the JS SDK needs Node 18 or later, this is %s", jsNodeV)
			return
		}
		dir := filepath.Join(root, "sdk/js")
		if jsErr = prepareJS(dir, jsNodeV); jsErr != nil {
			return
		}
		jsDir = dir
	})
	if jsErr != nil {
		t.Fatal(jsErr)
	}
	return jsDir
}

func hasCmd(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// chromiumPath is Debian's chromium, or another Chromium or Chrome on PATH; "" when none.
func chromiumPath() string {
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// jsPlatform is a platform of processes for the JS tests: NATS and a recording business server
// in this process; a state server, a gateway and ipconf as processes of the plato binary.
type jsPlatform struct {
	t         *testing.T
	cfg       string
	gwEnv     []string
	mu        sync.Mutex
	gw        *proc
	biz       *platformtest.Business
	plato     apiservice.Client
	ipconfURL string
	control   string
}

func startJSPlatform(t *testing.T) *jsPlatform {
	t.Helper()
	stAddr, gwAddr := freePort(t), freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	// The business refuses "refuse:..." uplinks with its own code, for the SDK's typed errors.
	biz.SetUplink(func(ev *api.Event) (int32, string) {
		if strings.HasPrefix(string(ev.Payload), "refuse:") {
			return 2042, "refused by the test business"
		}
		return 0, ""
	})
	p := &jsPlatform{t: t, cfg: cfg, biz: biz, gwEnv: []string{"PLATO_GATEWAY__ADDR=" + gwAddr, "PLATO_GATEWAY__WS_ADDR=" + freePort(t)}}
	p.start(stAddr)
	return p
}

// startDemoPlatform is startJSPlatform with the demo chat business server (and its login
// endpoint and web page) as its business, and the gateway's WebSocket listener on a port that
// stays the same across restarts. It returns the demo's login address too.
func startDemoPlatform(t *testing.T) (*jsPlatform, string) {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: t.TempDir()}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	stAddr, gwAddr, wsAddr, demoAddr, loginAddr := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("{url: %q}", ns.ClientURL()), fmt.Sprintf(`registry: {ttl: 3s}
state: {addr: %q}
demo: {addr: %q, login_addr: %q}
%s`, stAddr, demoAddr, loginAddr, appsYAML(demoAddr, demoAddr)))
	p := &jsPlatform{t: t, cfg: cfg, gwEnv: []string{"PLATO_GATEWAY__ADDR=" + gwAddr, "PLATO_GATEWAY__WS_ADDR=" + wsAddr}}
	dm := startProc(t, "demo", "demo", "--config", cfg)
	dm.waitLine(reRunning)
	p.start(stAddr)
	return p, loginAddr
}

// start runs the state server, the gateway and ipconf, and serves the control endpoint.
func (p *jsPlatform) start(stAddr string) {
	t := p.t
	st := startProc(t, "state", "state", "--config", p.cfg)
	st.waitLine(reRunning)
	p.gw = startProcEnv(t, "gateway", p.gwEnv, "gateway", "--config", p.cfg)
	p.gw.waitLine(reGateway)
	ip := startProc(t, "ipconf", "ipconf", "--config", p.cfg)
	p.ipconfURL = ip.waitLine(reIPConf)
	p.plato = platformtest.StateClient(t, stAddr)
	p.control = p.serveControl()
}

// restartGateway kills the gateway process (SIGKILL: its sockets break without a Close) and
// starts it again on the same address; the push, when not empty, is sent while it is down.
func (p *jsPlatform) restartGateway(pushTo string, payload []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.gw.cmd.Process.Kill(); err != nil {
		return 0, err
	}
	<-p.gw.exit
	var msgID int64
	if pushTo != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The state server learns of the drop when the gateway's link to it breaks: retry until the
		// push is kept for the device rather than sent to the dead gateway.
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := p.plato.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{pushTo}, Payload: payload, Qos: api.QoS_AT_LEAST_ONCE})
			if err == nil && len(resp.Targets) == 1 && resp.Targets[0].Status == api.PushStatus_QUEUED {
				msgID = resp.MsgId
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("push while the gateway is down: %+v %v, want QUEUED", resp, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	p.gw = startProcEnv(p.t, "gateway again", p.gwEnv, "gateway", "--config", p.cfg)
	p.gw.waitLine(reGateway)
	return msgID, nil
}

// serveControl serves the node tests' requests to this test on a loopback port.
func (p *jsPlatform) serveControl() string {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /credential", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		uid := q.Get("uid")
		if uid == "" {
			uid = q.Get("did")
		}
		c, err := credential.MintHS256("demo", "dev", platformtest.JWTSecret, q.Get("did"), uid, time.Now(), time.Hour)
		reply(w, map[string]string{"credential": c}, err)
	})
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		req := &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{q.Get("did")}, Payload: body, Qos: api.QoS_AT_LEAST_ONCE}
		if q.Get("wait_ack") != "" {
			req.WaitAck, req.TimeoutMs = true, 10000
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		resp, err := p.plato.Push(ctx, req)
		if err != nil {
			reply(w, nil, err)
			return
		}
		out := map[string]any{"msg_id": strconv.FormatInt(resp.MsgId, 10)}
		if len(resp.Targets) == 1 {
			out["status"] = resp.Targets[0].Status.String()
		}
		reply(w, out, nil)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		kind, err := api.EventKindFromString(q.Get("kind"))
		if err != nil {
			reply(w, nil, err)
			return
		}
		if p.biz == nil {
			reply(w, nil, errors.New("the demo business records no events"))
			return
		}
		reply(w, map[string]int{"count": len(p.biz.Events(kind, q.Get("did")))}, nil)
	})
	mux.HandleFunc("POST /restart-gateway", func(w http.ResponseWriter, r *http.Request) {
		id, err := p.restartGateway(r.URL.Query().Get("push_to"), []byte(r.URL.Query().Get("payload")))
		reply(w, map[string]string{"msg_id": strconv.FormatInt(id, 10)}, err)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	p.t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

var reTAPCounts = regexp.MustCompile(`(?m)^# (pass|fail|skipped|cancelled|todo) (\d+)$`)

// runNodeTests runs `node --test` on files in sdk/js with env, checks that every test passed and
// none was skipped, and that at least want ran.
func runNodeTests(t *testing.T, dir string, env []string, want int, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"--test", "--test-reporter=tap"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	counts := map[string]int{}
	for _, m := range reTAPCounts.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if err != nil || counts["fail"] != 0 || counts["skipped"] != 0 || counts["cancelled"] != 0 || counts["pass"] < want {
		t.Fatalf("node --test %s (%s): %v, %v (want %d passed, none skipped)\n%s", strings.Join(files, " "), jsNodeV, err, counts, want, out)
	}
	t.Logf("node --test %s (%s): %d passed", strings.Join(files, " "), jsNodeV, counts["pass"])
}

// TestJSSDK runs the JS SDK's codec tests (against docs/protocol.md and the Go codec), its unit tests against scripted gateways, and its
// client tests against the platform, over TCP and then WebSocket: login through ipconf, uplink
// ACKs and refusals, downlinks acknowledged by themselves, and a Resume after the gateway process
// is killed and started again.
func TestJSSDK(t *testing.T) {
	dir := jsSDK(t)
	p := startJSPlatform(t)
	env := []string{"PLATO_IPCONF=" + p.ipconfURL, "PLATO_CONTROL=" + p.control}
	runNodeTests(t, dir, append(env, "PLATO_GO_FRAMES="+goFrames(t)), 23,
		"test/codec.test.mjs", "test/gocodec.test.mjs", "test/unit.test.mjs", "test/client.test.mjs")
	// The same client tests over WebSocket: Node's WebSocket (22+), or the ws package's before.
	runNodeTests(t, dir, append(env, "PLATO_TRANSPORT=ws"), 6, "test/client.test.mjs")
}

// TestWebChat opens the demo's web chat page (examples/demo/web, on the JS SDK) in two tabs of a
// headless Chromium, which chat directly and in a room over WebSocket, then kills and restarts the
// gateway process: both tabs resume, a push sent meanwhile arrives, and the room still works.
func TestWebChat(t *testing.T) {
	dir := jsSDK(t)
	checkVendoredSDK(t, dir)
	browser := chromiumPath()
	if browser == "" {
		t.Fatal("no Chromium on PATH after scripts/install-js-deps: apt-get install chromium")
	}
	p, login := startDemoPlatform(t)
	chat := "http://" + login + "/chat/"
	page := httpGet(t, chat)
	if !strings.Contains(page, `src="chat.js"`) {
		t.Fatalf("GET %s: not the chat page:\n%s", chat, page)
	}
	runNodeTests(t, dir, []string{"PLATO_CHAT_URL=" + chat, "PLATO_IPCONF=" + p.ipconfURL, "PLATO_CONTROL=" + p.control, "PLATO_CHROMIUM=" + browser}, 1,
		"test/webchat.browser.mjs")
}

// checkVendoredSDK fails when the SDK copy the chat page loads (examples/demo/web/plato) is not
// sdk/js's build.
func checkVendoredSDK(t *testing.T, dir string) {
	t.Helper()
	built, _ := filepath.Glob(filepath.Join(dir, "dist", "*.js"))
	vendored, _ := filepath.Glob(filepath.Join(dir, "../../examples/demo/web/plato/*.js"))
	if len(built) == 0 || len(built) != len(vendored) {
		t.Fatalf("examples/demo/web/plato has %d files, sdk/js/dist %d: run `npm run build && npm run vendor` in sdk/js", len(vendored), len(built))
	}
	for _, f := range built {
		a, errA := os.ReadFile(f)
		b, errB := os.ReadFile(filepath.Join(dir, "../../examples/demo/web/plato", filepath.Base(f)))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("examples/demo/web/plato/%s is not sdk/js's build (%v %v): run `npm run build && npm run vendor` in sdk/js", filepath.Base(f), errA, errB)
		}
	}
}

// goFrames writes frames the Go codec (sdk/protocol) encodes, as JSON {name: hex}, for
// sdk/js/test/gocodec.test.mjs to check that the JS codec encodes the same values to the same
// bytes and decodes them back: the signals docs/protocol.md §13 has no dump of, and edge values.
func goFrames(t *testing.T) string {
	t.Helper()
	const maxU64 = ^uint64(0)
	frame := func(sig protocol.Signal, flags uint16, seq uint64, body []byte) string {
		return fmt.Sprintf("%x", protocol.AppendFrame(nil, sig, flags, seq, body))
	}
	frames := map[string]string{
		"login":     frame(protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: "dévice-1", UID: "ü", Token: "tok.en", Platform: "plato-js/1"}).Append(nil)),
		"loginAck":  frame(protocol.SigLoginAck, 0, 1, (&protocol.LoginAck{Code: 0, ConnID: maxU64, HeartbeatMs: 30000, Message: "welcome"}).Append(nil)),
		"refused":   frame(protocol.SigLoginAck, 0, 2, (&protocol.LoginAck{Code: protocol.CodeTokenExpired, Message: "token expired"}).Append(nil)),
		"uplinkAck": frame(protocol.SigUplinkAck, 0, 77, (&protocol.Ack{Code: 2042, Message: "no"}).Append(nil)),
		"downlink":  frame(protocol.SigDownlink, protocol.FlagBroadcast, 1<<40, (&protocol.Downlink{MsgID: 1 << 40, Payload: []byte("{}")}).Append(nil)),
		"retrans":   frame(protocol.SigDownlink, protocol.FlagRetransmit, 3, (&protocol.Downlink{MsgID: 9}).Append(nil)),
		"close":     frame(protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeReplaced, Message: "elsewhere"}).Append(nil)),
		"redirect":  frame(protocol.SigRedirect, 0, 0, (&protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: []string{"10.0.0.1:8900", "[::1]:8900", "ws://h:8910/plato"}, Token: "fresh"}).Append(nil)),
		"redirect0": frame(protocol.SigRedirect, 0, 0, (&protocol.Redirect{Code: protocol.CodeMigrated}).Append(nil)),
		"resume":    frame(protocol.SigResume, 0, 5, (&protocol.Resume{AppID: "demo", DID: "d1", UID: "u1", Token: "t", PrevConnID: maxU64 - 1, LastDownlink: 1 << 33}).Append(nil)),
		"resumeAck": frame(protocol.SigResumeAck, 0, 5, (&protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: "resume rejected: send Login"}).Append(nil)),
		"heartbeat": frame(protocol.SigHeartbeat, 0, maxU64, nil),
		"bcastAck":  frame(protocol.SigDownlinkAck, protocol.FlagBroadcast, 1<<40, nil),
	}
	b, err := json.Marshal(frames)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "go-frames.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
