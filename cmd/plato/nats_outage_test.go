package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/token"
)

var (
	reNATS  = regexp.MustCompile(`nats\s+(nats://\S+)\s+\(embedded`)
	reAdmin = regexp.MustCompile(`admin\s+(http://\S+)`)
)

// ipList is what a test reads of an ipconf answer.
type ipList struct {
	status    int
	endpoints []string // gateway IDs, sorted
	stale     bool
	body      string
}

// fetchList asks ipconf for did's endpoints as the device would.
func fetchList(t *testing.T, ipconfURL, did string) ipList {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ipconfURL+"/ip/list?app_id=demo&did="+did, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+platformtest.Credential(t, "demo", did, did))
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return ipList{body: err.Error()}
	}
	defer resp.Body.Close()
	var body struct {
		Endpoints []struct{ ID string }
		Stale     bool
	}
	var raw strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		raw.WriteString(sc.Text())
	}
	l := ipList{status: resp.StatusCode, body: raw.String()}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(l.body), &body); err != nil {
			t.Fatalf("ipconf answer %q: %v", l.body, err)
		}
		for _, e := range body.Endpoints {
			l.endpoints = append(l.endpoints, e.ID)
		}
		slices.Sort(l.endpoints)
		l.stale = body.Stale
	}
	return l
}

// scrape returns the value of the series of name (with its labels, as /metrics prints them) at
// adminURL, or -1.
func scrape(adminURL, series string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
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

// natsDevice logs a device in through gateway addr with a minted token.
func natsDevice(t *testing.T, addr, did string) *client.Client {
	t.Helper()
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Endpoints: []string{addr}, Token: tok, AppID: "demo", DID: did, LoginTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("device %s through %s: %v", did, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendOK(t *testing.T, c *client.Client, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte(what)); err != nil {
		t.Fatalf("uplink %q: %v", what, err)
	}
}

// TestNATSRestartUnderRolesAsProcesses runs NATS (`plato nats`, its registry bucket in memory), a
// state server, a gateway and ipconf as processes, kills NATS with SIGKILL and starts it again on
// the same address. While NATS is away, ipconf keeps answering with the gateway it knew, marked
// stale, and devices keep working; once it is back, every process registers again, ipconf
// answers fresh, and a gateway started then is handed out by ipconf, seen by the state server,
// and carries devices.
func TestNATSRestartUnderRolesAsProcesses(t *testing.T) {
	natsAddr := freePort(t)
	host, port, _ := net.SplitHostPort(natsAddr)
	biz := platformtest.StartBusiness(t)
	cfg := writeConfig(t,
		fmt.Sprintf("{url: %q, embedded: {host: %s, port: %s, store_dir: %q}}", "nats://"+natsAddr, host, port, t.TempDir()),
		"registry: {ttl: 3s}\n"+appsYAML(biz.Addr, biz.Addr))

	nats := startProc(t, "nats", "nats", "--config", cfg)
	nats.waitLine(reNATS)
	st := startProcEnv(t, "state", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + freePort(t)}, "state", "--config", cfg)
	st.waitLine(reRunning)
	stAdmin := st.waitLine(reAdmin)
	gw1 := startProcEnv(t, "gw-1", []string{"PLATO_GATEWAY__ID=gw-1"}, "gateway", "--config", cfg)
	gw1Addr := gw1.waitLine(reGateway)
	// A gateway not heard from for a second is normally left out: only the stale view keeps it.
	ip := startProcEnv(t, "ipconf", []string{"PLATO_IPCONF__STALE_AFTER=1s"}, "ipconf", "--config", cfg)
	ipURL := ip.waitLine(reIPConf)
	poll.Within(t, 30*time.Second, "ipconf to hand out gw-1", func() bool {
		l := fetchList(t, ipURL, "d0")
		return l.status == http.StatusOK && slices.Equal(l.endpoints, []string{"gw-1"}) && !l.stale
	})
	before := natsDevice(t, gw1Addr, "before")
	sendOK(t, before, "before the outage")

	if err := nats.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-nats.exit
	killed := time.Now()
	poll.Within(t, 30*time.Second, "ipconf to mark its answers stale", func() bool {
		l := fetchList(t, ipURL, "d1")
		if l.status != http.StatusOK {
			t.Fatalf("ipconf answered %d %s %v after NATS was killed", l.status, l.body, time.Since(killed).Round(time.Millisecond))
		}
		return l.stale
	})
	// Three times ipconf.stale_after and a registry TTL: the list stays.
	for time.Since(killed) < 3*time.Second {
		if l := fetchList(t, ipURL, "d2"); l.status != http.StatusOK || !l.stale || !slices.Equal(l.endpoints, []string{"gw-1"}) {
			t.Fatalf("ipconf answered %d %v stale=%v %v after NATS was killed: %s", l.status, l.endpoints, l.stale, time.Since(killed).Round(time.Millisecond), l.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sendOK(t, before, "during the outage")
	if v := scrape(stAdmin, "plato_registry_up"); v != 0 {
		t.Errorf("state server's plato_registry_up = %v during the outage, want 0", v)
	}
	if v := scrape(stAdmin, `plato_registry_nodes{role="gateway"}`); v != 1 {
		t.Errorf("state server's view of the gateways during the outage = %v, want 1 (kept)", v)
	}

	nats = startProc(t, "nats again", "nats", "--config", cfg)
	nats.waitLine(reNATS)
	back := time.Now()
	gw2 := startProcEnv(t, "gw-2", []string{"PLATO_GATEWAY__ID=gw-2"}, "gateway", "--config", cfg)
	gw2Addr := gw2.waitLine(reGateway)
	poll.Within(t, 30*time.Second, "ipconf to hand out both gateways, fresh", func() bool {
		l := fetchList(t, ipURL, "d3")
		if l.status != http.StatusOK {
			t.Fatalf("ipconf answered %d %s %v after NATS came back", l.status, l.body, time.Since(back).Round(time.Millisecond))
		}
		return slices.Equal(l.endpoints, []string{"gw-1", "gw-2"}) && !l.stale
	})
	t.Logf("ipconf fresh with the new gateway %v after NATS came back", time.Since(back).Round(time.Millisecond))
	poll.Within(t, 30*time.Second, "the state server to see the new gateway", func() bool {
		return scrape(stAdmin, `plato_registry_nodes{role="gateway"}`) == 2 && scrape(stAdmin, "plato_registry_stale_seconds") == 0
	})
	for _, admin := range []string{stAdmin, gw1.waitLine(reAdmin), ip.waitLine(reAdmin)} {
		if v := scrape(admin, "plato_registry_up"); v != 1 {
			t.Errorf("%s: plato_registry_up = %v after NATS came back", admin, v)
		}
	}
	if v := scrape(ip.waitLine(reAdmin), "plato_ipconf_stale_answers_total"); v < 1 {
		t.Errorf("plato_ipconf_stale_answers_total = %v", v)
	}
	// Devices: the one that lived through it, and one through the new gateway, which found the
	// state server in the registry (it registered again) and whose LoginAck comes back through
	// the state server's link to it.
	sendOK(t, before, "after the outage")
	after := natsDevice(t, gw2Addr, "after")
	sendOK(t, after, "through the new gateway")
	select {
	case <-before.Done():
		t.Errorf("the device connected before the outage was disconnected: %v", before.Err())
	default:
	}
	for _, p := range []*proc{ip, gw2, gw1, st, nats} {
		p.interrupt()
	}
}

// TestNATSClusterLosesANodeUnderRolesAsProcesses runs a three-node NATS cluster (three `plato
// nats` processes), a state server, a gateway and ipconf as processes, and kills the node that
// leads the registry bucket (replicated on all three) with SIGKILL. The registry keeps working:
// ipconf keeps answering with the gateway, and a gateway started after the loss is handed out by
// ipconf and seen by the state server.
func TestNATSClusterLosesANodeUnderRolesAsProcesses(t *testing.T) {
	const size = 3
	var clients, routes [size]string
	for i := range size {
		clients[i], routes[i] = freePort(t), freePort(t)
	}
	biz := platformtest.StartBusiness(t)
	var urls []string
	for _, c := range clients {
		urls = append(urls, "nats://"+c)
	}
	cfg := writeConfig(t, fmt.Sprintf("{url: %q}", strings.Join(urls, ",")), "registry: {ttl: 3s}\n"+appsYAML(biz.Addr, biz.Addr))
	nodes := make([]*proc, size)
	for i := range nodes {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats-route://"+r)
			}
		}
		_, port, _ := net.SplitHostPort(clients[i])
		nodes[i] = startProcEnv(t, fmt.Sprintf("nats-%d", i), []string{
			"PLATO_NATS__EMBEDDED__PORT=" + port, "PLATO_NATS__EMBEDDED__STORE_DIR=" + t.TempDir(),
			"PLATO_NATS__EMBEDDED__CLUSTER__NAME=plato-test", "PLATO_NATS__EMBEDDED__CLUSTER__ADDR=" + routes[i],
			"PLATO_NATS__EMBEDDED__CLUSTER__ROUTES=" + strings.Join(others, ","),
		}, "nats", "--config", cfg)
	}
	for _, n := range nodes {
		n.waitLine(regexp.MustCompile(`routes\s+(nats-route://\S+)`))
	}
	// The state server waits for the cluster's JetStream to elect its leader and take the bucket.
	st := startProcEnv(t, "state", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + freePort(t)}, "state", "--config", cfg)
	st.waitLine(reRunning)
	stAdmin := st.waitLine(reAdmin)
	gw1 := startProcEnv(t, "gw-1", []string{"PLATO_GATEWAY__ID=gw-1"}, "gateway", "--config", cfg)
	gw1.waitLine(reGateway)
	ip := startProcEnv(t, "ipconf", []string{"PLATO_IPCONF__STALE_AFTER=1s"}, "ipconf", "--config", cfg)
	ipURL := ip.waitLine(reIPConf)
	poll.Within(t, 30*time.Second, "ipconf to hand out gw-1", func() bool {
		l := fetchList(t, ipURL, "d0")
		return l.status == http.StatusOK && slices.Equal(l.endpoints, []string{"gw-1"})
	})

	// The bucket is on all three nodes; lose its leader.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, js, err := registry.Connect(ctx, strings.Join(urls, ","), "test", testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, "plato_registry")
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.Replicas != size {
		t.Fatalf("the registry bucket has %d replicas on a cluster of %d", info.Config.Replicas, size)
	}
	victim := slices.IndexFunc(routes[:], func(r string) bool {
		_, port, _ := net.SplitHostPort(r)
		return info.Cluster != nil && strings.HasSuffix(info.Cluster.Leader, "-"+port)
	})
	if victim < 0 {
		t.Fatalf("no node leads the bucket: %+v", info.Cluster)
	}
	if err := nodes[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-nodes[victim].exit
	lost := time.Now()
	// While the other two elect a new leader (seconds: NATS' raft election timeout), the
	// registry takes no write; ipconf keeps answering with the gateway all along.
	var recovered time.Duration
	poll.Within(t, 60*time.Second, "the registry to take writes again", func() bool {
		if l := fetchList(t, ipURL, "d1"); l.status != http.StatusOK || !slices.Equal(l.endpoints, []string{"gw-1"}) {
			t.Fatalf("ipconf answered %d %v %v after the node was lost: %s", l.status, l.endpoints, time.Since(lost).Round(time.Millisecond), l.body)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := kv.Put(pctx, "probe.test", []byte("1"))
		recovered = time.Since(lost)
		return err == nil && recovered > 3*time.Second
	})
	t.Logf("the registry took writes again at most %v after the node was lost", recovered.Round(time.Millisecond))
	gw2 := startProcEnv(t, "gw-2", []string{"PLATO_GATEWAY__ID=gw-2"}, "gateway", "--config", cfg)
	gw2Addr := gw2.waitLine(reGateway)
	t.Logf("gw-2 up %v after the loss", time.Since(lost).Round(time.Millisecond))
	poll.Within(t, 30*time.Second, "ipconf to hand out both gateways, fresh", func() bool {
		l := fetchList(t, ipURL, "d2")
		if l.status != http.StatusOK {
			t.Fatalf("ipconf answered %d %s after the node was lost", l.status, l.body)
		}
		return slices.Equal(l.endpoints, []string{"gw-1", "gw-2"}) && !l.stale
	})
	t.Logf("ipconf fresh %v after the loss", time.Since(lost).Round(time.Millisecond))
	poll.Within(t, 30*time.Second, "the state server to see the new gateway", func() bool {
		return scrape(stAdmin, `plato_registry_nodes{role="gateway"}`) == 2
	})
	t.Logf("the new gateway seen everywhere %v after the node was lost", time.Since(lost).Round(time.Millisecond))
	sendOK(t, natsDevice(t, gw2Addr, "after"), "through the new gateway")
	for _, p := range []*proc{ip, gw2, gw1, st} {
		p.interrupt()
	}
	for i, n := range nodes {
		if i != victim {
			n.interrupt()
		}
	}
}
