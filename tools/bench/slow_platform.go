package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// slowPlatform is the slow-consumers scenario's platform, built as failover's is (platformBase,
// foConfig, foBusiness): an embedded NATS server and the business server in this process, one
// state server and one gateway as processes of the plato binary. The state server keeps nothing
// for a Resume (state.reconnect_window 0), so the business hears DISCONNECTED, with the close
// code, the moment the gateway closes a device; the gateway gets the scenario's slow-consumer
// settings from its environment.
type slowPlatform struct {
	platformBase
	state    *platoProc
	gw       *platoProc
	gwAddr   string
	adminURL string
	stateAdr string

	tokenSecret, appKey string
}

func startSlowPlatform(ctx context.Context, o Options) (p *slowPlatform, err error) {
	p = &slowPlatform{platformBase: platformBase{command: o.PlatoCommand}}
	defer stopOnError(&p, &err)
	if err = p.open(ctx, "slow", true, 1); err != nil {
		return p, err
	}
	p.tokenSecret, p.appKey = randomHex(24), randomHex(16)
	if p.stateAdr, err = freeLoopbackAddr(); err != nil {
		return p, err
	}
	if err = p.writeConfig(foConfig(p.dir, p.natsServer.ClientURL(), p.tokenSecret, o.AppID, p.appKey, randomHex(24), p.biz.addr(0))); err != nil {
		return p, err
	}
	stateEnv := []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + p.stateAdr, "PLATO_STATE__RECONNECT_WINDOW=0s"}
	if _, err = p.startProc(ctx, &p.state, "state", "state", stateEnv, reRunningLine); err != nil {
		return p, err
	}
	gwEnv := append([]string{"PLATO_ADMIN__ADDR=127.0.0.1:0"}, slowGatewayEnv(o)...)
	if p.gwAddr, err = p.startProc(ctx, &p.gw, "gateway", "gateway", gwEnv, reGatewayLine); err != nil {
		return p, err
	}
	if p.adminURL, err = p.gw.waitLine(ctx, reAdminLine, time.Second); err != nil {
		return p, fmt.Errorf("the gateway's admin address (its metrics are part of the figures): %w", err)
	}
	return p, waitGatewayLogin(ctx, p.gwAddr, o.AppID, p.tokenSecret, 30*time.Second)
}

// slowGatewayEnv sets the gateway's slow-consumer settings the options give (0: Plato's default).
func slowGatewayEnv(o Options) []string {
	var env []string
	if o.MaxUnsent > 0 {
		env = append(env, "PLATO_GATEWAY__SLOW_CONSUMER__MAX_UNSENT_BYTES="+strconv.Itoa(o.MaxUnsent))
	}
	if o.MaxStall > 0 {
		env = append(env, "PLATO_GATEWAY__SLOW_CONSUMER__MAX_STALL="+o.MaxStall.String())
	}
	if o.SendBuffer > 0 {
		env = append(env, "PLATO_GATEWAY__SOCKET_SEND_BUFFER="+strconv.Itoa(o.SendBuffer))
	}
	return env
}

// gatewayMetric reads one metric from the gateway's /metrics, summed over the label sets that
// contain every one of labels (`reason="stalled"`), or -1.
func (p *slowPlatform) gatewayMetric(name string, labels ...string) float64 {
	body, err := fetchMetrics(p.adminURL)
	if err != nil {
		return -1
	}
	var kept []string
	for _, line := range strings.Split(body, "\n") {
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			kept = append(kept, line)
		}
	}
	return metricValue(strings.NewReader(strings.Join(kept, "\n")), name)
}

func (p *slowPlatform) stop() {
	p.gw.stop()
	p.state.stop()
	p.platformBase.stop()
}

// fetchMetrics is the Prometheus text at url's /metrics.
func fetchMetrics(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b), err
}
