package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The failover scenario's own platform: an embedded NATS server and the business server in this
// process, two state servers and one gateway as processes of the plato binary (Options.PlatoCommand),
// all on 127.0.0.1, configured by one file in a temporary directory and an environment override
// per process (PLATO_STATE__ID, PLATO_STATE__ADDR, the app's business address). Everything stops,
// and the directory goes, with stop.

// registryTTL is how long a killed state server stays in the registry.
const registryTTL = 3 * time.Second

// Names of the two state servers; the first is the one killed.
var foStateIDs = [2]string{"state-1", "state-2"}

const (
	victim   = 0
	survivor = 1
)

type foPlatform struct {
	platformBase
	appID string

	tokenSecret, appKey string
	stateAddr           [2]string
	states              [2]*platoProc
	// gws are the gateways: one but for the upgrade scenario's --gateways.
	gws []*foGateway
}

// foGateway is one gateway process of the platform, with its own ports, data directory and
// control socket.
type foGateway struct {
	id       string
	proc     *platoProc
	addr     string
	adminURL string
	dataDir  string
	// next is the gateway process an in-place upgrade started (upgrade.go); 0 before.
	next int
}

// pid is the gateway process now serving.
func (g *foGateway) pid() int {
	if g.next != 0 {
		return g.next
	}
	return g.proc.cmd.Process.Pid
}

// startFoPlatform starts NATS, the business server, the state servers and the gateway, and
// returns once the gateway forwards logins to both state servers. On error what started is
// stopped.
func startFoPlatform(ctx context.Context, o Options) (p *foPlatform, err error) {
	p = &foPlatform{platformBase: platformBase{command: o.PlatoCommand}, appID: o.AppID}
	defer stopOnError(&p, &err)
	if err = p.open(ctx, "failover", true, 2); err != nil {
		return p, err
	}
	p.tokenSecret, p.appKey = randomHex(24), randomHex(16)
	for i := range p.stateAddr {
		if p.stateAddr[i], err = freeLoopbackAddr(); err != nil {
			return p, err
		}
	}
	if err = p.writeConfig(foConfig(p.dir, p.natsServer.ClientURL(), p.tokenSecret, o.AppID, p.appKey, randomHex(24), p.biz.addr(0))); err != nil {
		return p, err
	}
	for i := range p.states {
		if err = p.startState(ctx, i); err != nil {
			return p, err
		}
	}
	for k := range max(1, o.GatewayProcs) {
		if err = p.startGateway(ctx, k, o.GatewayProcs > 1); err != nil {
			return p, err
		}
	}
	for _, g := range p.gws {
		if err = p.waitBothStates(ctx, g, 30*time.Second); err != nil {
			return p, fmt.Errorf("%s: %w", g.id, err)
		}
	}
	return p, nil
}

// startGateway starts gateway k. Several get IDs, ports (devices, WebSocket, admin) and data
// directories (control sockets) of their own; a lone one keeps the configuration's ID and data
// directory.
func (p *foPlatform) startGateway(ctx context.Context, k int, several bool) error {
	g := &foGateway{id: "gw-bench", dataDir: filepath.Join(p.dir, "data")}
	env := []string{"PLATO_ADMIN__ADDR=127.0.0.1:0", "PLATO_GATEWAY__WS_ADDR=127.0.0.1:0"}
	if several {
		g.id, g.dataDir = fmt.Sprintf("gw-bench-%d", k+1), filepath.Join(p.dir, fmt.Sprintf("gw-%d", k+1))
		if err := os.MkdirAll(g.dataDir, 0o700); err != nil {
			return err
		}
		env = append(env, "PLATO_GATEWAY__ID="+g.id, "PLATO_DATA_DIR="+g.dataDir)
	}
	p.gws = append(p.gws, g)
	var err error
	if g.addr, err = p.startProc(ctx, &g.proc, g.id, "gateway", env, reGatewayLine); err != nil {
		return err
	}
	if g.adminURL, err = g.proc.waitLine(ctx, reAdminLine, time.Second); err != nil {
		g.adminURL = "" // the metrics are a cross-check only
	}
	return nil
}

// foConfig is the platform's configuration file: state server i gets its ID, address and business
// address from its environment. extra are more top-level lines a scenario needs (crashloop's
// state and pipeline).
func foConfig(dir, natsURL, tokenSecret, app, appKey, jwtSecret, business string, extra ...string) string {
	return fmt.Sprintf(`# written by plato bench
data_dir: %q
log: {level: warn}
nats: {url: %q}
registry: {ttl: %s}
auth: {token_secret: %q}
admin: {addr: ""}
ipconf: {addr: "127.0.0.1:0"}
gateway: {id: gw-bench, addr: "127.0.0.1:0"}
%sapps:
  %s:
    business: %q
    keys: {bench: %q}
    auth: {jwt: {secrets: {bench: %q}}}
    limits: {device_uplinks_per_sec: 1000000, device_uplink_burst: 1000000, device_bytes_per_sec: 1000000000}
`, filepath.Join(dir, "data"), natsURL, registryTTL, tokenSecret, strings.Join(extra, ""), app, business, appKey, jwtSecret)
}

// startState starts state server i (again, after a kill: same ID and address).
func (p *foPlatform) startState(ctx context.Context, i int) error {
	env := []string{
		"PLATO_STATE__ID=" + foStateIDs[i], "PLATO_STATE__ADDR=" + p.stateAddr[i],
		"PLATO_APPS__" + strings.ToUpper(p.appID) + "__BUSINESS=" + p.biz.addr(i),
	}
	_, err := p.startProc(ctx, &p.states[i], foStateIDs[i], "state", env, reRunningLine)
	return err
}

// waitBothStates logs probe devices in through gateway g until the business has heard of one
// through each state server: the gateway then knows both, and the fleet's devices spread over
// them.
func (p *foPlatform) waitBothStates(ctx context.Context, g *foGateway, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var seen [2]bool
	for k := 0; !(seen[0] && seen[1]); k++ {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the gateway did not forward logins to both state servers within %v (through %v)", limit, seen)
		}
		did := "probe-" + g.id + "-" + strconv.Itoa(k)
		pr, err := p.probe(ctx, g.addr, did)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		pr.close()
		if s := pr.state; s >= 0 {
			seen[s] = true
		}
	}
	return nil
}

// probeConn is a device logged in outside the fleet, to see where logins go.
type probeConn struct {
	nc    net.Conn
	state int // the state server the business heard its login from, or -1
}

func (c *probeConn) close() {
	_, _ = c.nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)))
	c.nc.Close()
}

// probe logs did in through the gateway at gwAddr, sends one uplink and waits for its ACK, then for
// the business to say which state server it came through.
func (p *foPlatform) probe(ctx context.Context, gwAddr, did string) (*probeConn, error) {
	signer, err := token.NewSigner([]byte(p.tokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	tok, _ := signer.Issue(p.appID, did, did, time.Now(), time.Time{})
	nc, br, _, err := dialLogin(ctx, nil, gwAddr, &protocol.Login{AppID: p.appID, DID: did, UID: did, Token: tok, Platform: "plato-bench/1"})
	if err != nil {
		return nil, err
	}
	c := &probeConn{nc: nc, state: -1}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte(`{"to":"probe","text":"1"}`))); err != nil {
		c.close()
		return nil, fmt.Errorf("probe uplink: %s", errClass(err))
	}
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("probe uplink ack: %s", errClass(err))
		}
		if f.Signal == protocol.SigUplinkAck {
			var ack protocol.Ack
			if err := ack.Decode(f.Body); err != nil || ack.Code != protocol.CodeOK {
				c.close()
				return nil, fmt.Errorf("probe uplink ack code %d", ack.Code)
			}
			break
		}
	}
	_ = nc.SetDeadline(time.Time{})
	// The CONNECTED event travels apart from the uplink: wait for it a little.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if c.state = p.biz.stateOf(did); c.state >= 0 {
			break
		}
	}
	return c, nil
}

// gatewayMetric reads one counter from the gateways' /metrics, summed, or -1 if none answers.
func (p *foPlatform) gatewayMetric(name string) float64 {
	sum := -1.0
	for _, g := range p.gws {
		if g.adminURL == "" {
			continue
		}
		if v := adminMetric(g.adminURL, name); v >= 0 {
			sum = max(sum, 0) + v
		}
	}
	return sum
}

// adminMetric reads one metric of an admin server's /metrics (summed over its label sets), or -1.
func adminMetric(adminURL, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(adminURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	return metricValue(resp.Body, name)
}

// metricValue finds name's value in Prometheus text (the sum over its label sets), or -1.
func metricValue(r io.Reader, name string) float64 {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// stop stops the gateway, the state servers, NATS and the business server, and removes the
// directory.
func (p *foPlatform) stop() {
	for _, g := range p.gws {
		g.stopUpgraded()
	}
	var gws []*platoProc
	for _, g := range p.gws {
		gws = append(gws, g.proc)
	}
	stopProcs(gws...)
	stopProcs(p.states[:]...)
	p.platformBase.stop()
}

var errNoPlatoCommand = errors.New("the failover scenario starts state servers and a gateway: it needs the plato binary (Options.PlatoCommand)")
