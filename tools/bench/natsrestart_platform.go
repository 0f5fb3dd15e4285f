package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/internal/credential"
)

// The nats-restart scenario's own platform: NATS as a process of its own (`plato nats`, the
// registry bucket in memory, as on a standalone server), a state server, a gateway and ipconf as
// processes of the plato binary, and the business server in this process, on 127.0.0.1,
// configured by one file in a temporary directory. NATS is the process that gets killed; a second
// gateway is started once NATS is back. Everything stops, and the directory goes, with stop.

// nrRegistryTTL is the platform's registry TTL: the default, as the figures are a fleet's.
const nrRegistryTTL = 5 * time.Second

var reNATSLine = regexp.MustCompile(`nats\s+(nats://\S+)\s+\(embedded`)

type nrPlatform struct {
	platformBase
	appID     string
	natsURL   string
	stateAddr string

	tokenSecret, appKey, jwtSecret string

	nats, state, ipconf *platoProc
	gws                 []*platoProc
	gwAddrs             []string
	ipconfURL           string
	stateAdmin          string
	admins              []string // every role process's admin URL
}

// startNRPlatform starts the business server, NATS, the state server, gateway gw-1 and ipconf,
// and returns once ipconf hands out gw-1. On error what started is stopped.
func startNRPlatform(ctx context.Context, o Options) (p *nrPlatform, err error) {
	p = &nrPlatform{platformBase: platformBase{command: o.PlatoCommand}, appID: o.AppID}
	defer stopOnError(&p, &err)
	if err = p.open(ctx, "nats-restart", false, 1); err != nil {
		return p, err
	}
	natsAddr, err := freeLoopbackAddr()
	if err != nil {
		return p, err
	}
	stateAddr, err := freeLoopbackAddr()
	if err != nil {
		return p, err
	}
	p.natsURL, p.stateAddr = "nats://"+natsAddr, stateAddr
	p.tokenSecret, p.appKey, p.jwtSecret = randomHex(24), randomHex(16), randomHex(24)
	if err = p.writeConfig(nrConfig(p.dir, natsAddr, stateAddr, p.tokenSecret, o.AppID, p.appKey, p.jwtSecret, p.biz.addr(0))); err != nil {
		return p, err
	}
	if err = p.startNATS(ctx); err != nil {
		return p, err
	}
	if p.state, _, err = p.startRole(ctx, "state-1", "state", reRunningLine); err != nil {
		return p, err
	}
	if p.stateAdmin, err = p.state.waitLine(ctx, reAdminLine, time.Second); err != nil {
		return p, err
	}
	if err = p.startGateway(ctx, "gw-1"); err != nil {
		return p, err
	}
	if p.ipconf, p.ipconfURL, err = p.startRole(ctx, "ipconf", "ipconf", reIPConfLine); err != nil {
		return p, err
	}
	for _, pr := range []*platoProc{p.state, p.gws[0], p.ipconf} {
		a, err := pr.waitLine(ctx, reAdminLine, time.Second)
		if err != nil {
			return p, err
		}
		p.admins = append(p.admins, a)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := p.list(ctx); l.status == http.StatusOK && !l.stale && len(l.gateways) == 1 {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return p, fmt.Errorf("ipconf did not hand out gw-1 within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nrConfig is the platform's configuration file. `plato nats` serves nats.embedded; the roles dial
// nats.url, the same address.
func nrConfig(dir, natsAddr, stateAddr, tokenSecret, app, appKey, jwtSecret, business string) string {
	host, port, _ := net.SplitHostPort(natsAddr)
	return fmt.Sprintf(`# written by plato bench nats-restart
data_dir: %q
log: {level: warn}
nats: {url: %q, embedded: {host: %q, port: %s, store_dir: %q}}
registry: {ttl: %s}
auth: {token_secret: %q}
ipconf: {addr: "127.0.0.1:0"}
state: {id: state-1, addr: %q}
gateway: {addr: "127.0.0.1:0"}
apps:
  %s:
    business: %q
    keys: {bench: %q}
    auth: {jwt: {secrets: {bench: %q}}}
    limits: {device_uplinks_per_sec: 1000000, device_uplink_burst: 1000000, device_bytes_per_sec: 1000000000}
`, filepath.Join(dir, "data"), "nats://"+natsAddr, host, port, filepath.Join(dir, "nats"), nrRegistryTTL, tokenSecret, stateAddr, app, business, appKey, jwtSecret)
}

// startNATS starts `plato nats` (again, after a kill: same address and directory) and returns once
// it accepts connections.
func (p *nrPlatform) startNATS(ctx context.Context) error {
	_, err := p.startProc(ctx, &p.nats, "nats", "nats", []string{"PLATO_ADMIN__ADDR="}, reNATSLine)
	return err
}

// startRole starts a role process with its own admin port and returns the first submatch of
// ready on its stdout; it stops the process if that line does not come.
func (p *nrPlatform) startRole(ctx context.Context, name, role string, ready *regexp.Regexp) (*platoProc, string, error) {
	var pr *platoProc
	line, err := p.startProc(ctx, &pr, name, role, []string{"PLATO_ADMIN__ADDR=127.0.0.1:0"}, ready)
	if err != nil {
		pr.stop()
		return nil, "", err
	}
	return pr, line, nil
}

// startGateway starts gateway id and records its device address.
func (p *nrPlatform) startGateway(ctx context.Context, id string) error {
	pr, err := startPlatoProc(p.command, id, []string{"PLATO_ADMIN__ADDR=127.0.0.1:0", "PLATO_GATEWAY__ID=" + id}, "gateway", "--config", p.cfg)
	if err != nil {
		return err
	}
	p.gws = append(p.gws, pr)
	addr, err := pr.waitLine(ctx, reGatewayLine, procStartTimeout)
	if err != nil {
		return err
	}
	p.gwAddrs = append(p.gwAddrs, addr)
	return nil
}

// nrList is what the scenario reads of one ipconf answer.
type nrList struct {
	status   int // 0: no answer
	stale    bool
	gateways []string
}

// list asks ipconf for the bench app's endpoints, with a credential signed as the app's backend
// would.
func (p *nrPlatform) list(ctx context.Context) nrList {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ipconfURL+"/ip/list?app_id="+p.appID+"&did=nats-restart-probe", nil)
	if err != nil {
		return nrList{}
	}
	cred, err := credential.MintHS256(p.appID, "bench", p.jwtSecret, "nats-restart-probe", "nats-restart-probe", time.Now(), time.Hour)
	if err != nil {
		return nrList{status: -1}
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nrList{}
	}
	defer resp.Body.Close()
	l := nrList{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		return l
	}
	var body struct {
		Endpoints []struct{ ID string }
		Stale     bool
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nrList{status: -1}
	}
	l.stale = body.Stale
	for _, e := range body.Endpoints {
		l.gateways = append(l.gateways, e.ID)
	}
	return l
}

// metric reads one series, exactly as /metrics prints it (name and labels), or -1.
func metric(adminURL, series string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(adminURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// stop stops every process, the business server, and removes the directory.
func (p *nrPlatform) stop() {
	stopProcs(append([]*platoProc{p.ipconf, p.state}, p.gws...)...)
	p.nats.stop()
	p.platformBase.stop()
}

var reIPConfLine = regexp.MustCompile(`ipconf\s+(http://\S+)`)
