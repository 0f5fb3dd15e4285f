package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plato.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const secret = "0123456789abcdef0123"

func TestPrecedence(t *testing.T) {
	path := writeFile(t, `
auth: {token_secret: "`+secret+`"}
gateway: {addr: "127.0.0.1:9001", max_body: 2048, login_timeout: 3s}
apps: {chat: {business: "127.0.0.1:7000", keys: {k1: "a-key-of-16-bytes!"}, auth: {jwt: {secrets: {k1: "a-jwt-secret-of-at-least-32-bytes"}}}}}
`)
	env := []string{"PLATO_GATEWAY__ADDR=127.0.0.1:9002", "PLATO_STATE__HEARTBEAT_TIMEOUT=2m", "HOME=/root",
		"PLATO_APPS__CHAT__KEYS__K2=another-key-of-16-bytes"}
	cfg, src, err := Load(path, env, map[string]string{"gateway.addr": "127.0.0.1:9003"})
	if err != nil {
		t.Fatal(err)
	}
	if src.File != path {
		t.Errorf("source file %q", src.File)
	}
	if cfg.Gateway.Addr != "127.0.0.1:9003" {
		t.Errorf("gateway.addr = %q: flags must win over env and file", cfg.Gateway.Addr)
	}
	if cfg.Gateway.MaxBody != 2048 || cfg.Gateway.LoginTimeout != 3*time.Second {
		t.Errorf("file values not applied: %+v", cfg.Gateway)
	}
	if cfg.State.HeartbeatTimeout != 2*time.Minute {
		t.Errorf("env value not applied: heartbeat_timeout %v", cfg.State.HeartbeatTimeout)
	}
	if a := cfg.Apps["chat"]; a.Business != "127.0.0.1:7000" || a.Keys["k1"] != "a-key-of-16-bytes!" || a.Keys["k2"] != "another-key-of-16-bytes" {
		t.Errorf("apps: %+v", cfg.Apps)
	}
	if cfg.State.HeartbeatInterval != DefaultHeartbeat || cfg.IPConf.Addr != DefaultIPConfAddr {
		t.Errorf("defaults lost: %v %q", cfg.State.HeartbeatInterval, cfg.IPConf.Addr)
	}
}

func TestValidationNamesEveryBadKey(t *testing.T) {
	path := writeFile(t, `
auth: {token_secret: "short"}
gateway: {addr: "nowhere", max_body: 1}
state: {heartbeat_interval: 10s, heartbeat_timeout: 5s}
log: {level: loud}
`)
	_, _, err := Load(path, nil, nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"auth.token_secret", "gateway.addr", "gateway.max_body", "state.heartbeat_timeout", "log.level", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestAppsAreValidated(t *testing.T) {
	path := writeFile(t, `
auth: {token_secret: "`+secret+`"}
apps:
  Bad.ID: {keys: {k: "a-key-of-16-bytes!"}, auth: {callback: true, jwt: {secrets: {k: "short"}}}}
  nokeys: {auth: {jwt: {secrets: {k: "a-jwt-secret-of-at-least-32-bytes"}}}}
  noauth: {keys: {k: "a-key-of-16-bytes!"}}
  cb: {keys: {k: "a-key-of-16-bytes!"}, auth: {callback: true}}
  neg: {keys: {k: "a-key-of-16-bytes!"}, auth: {jwt: {secrets: {k: "a-jwt-secret-of-at-least-32-bytes"}}}, limits: {connections: -1}}
`)
	_, _, err := Load(path, nil, nil)
	if err == nil {
		t.Fatal("bad apps accepted")
	}
	for _, want := range []string{"apps.Bad.ID", "apps.Bad.ID.auth.jwt.secrets.k", "apps.nokeys.keys", "apps.noauth.auth", "apps.cb.auth.callback", "apps.neg.limits.connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestMovedKeysFailLoudly(t *testing.T) {
	path := writeFile(t, `
auth: {token_secret: "`+secret+`"}
state: {business: {keys: {demo: "a-key-of-16-bytes!"}}}
`)
	_, _, err := Load(path, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "state.business.keys") || !strings.Contains(err.Error(), "apps.<app>.keys") {
		t.Fatalf("a moved key: %v", err)
	}
}

func TestMissingFileAndBadYAML(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, nil); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := Load(writeFile(t, "gateway: [unclosed"), nil, nil); err == nil || !strings.Contains(err.Error(), "parsing config file") {
		t.Errorf("bad yaml: %v", err)
	}
	if _, _, err := Load(writeFile(t, "gateway: {login_timeout: soon}"), []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}, nil); err == nil {
		t.Error("a duration that does not parse was accepted")
	}
}

func TestShippedConfigIsValid(t *testing.T) {
	if _, _, err := Load(filepath.Join("..", "..", "configs", "plato.yaml"), nil, nil); err != nil {
		t.Fatalf("configs/plato.yaml: %v", err)
	}
}

func TestParseOverride(t *testing.T) {
	if k, v, err := ParseOverride("gateway.addr=1.2.3.4:5=6"); err != nil || k != "gateway.addr" || v != "1.2.3.4:5=6" {
		t.Errorf("got %q %q %v", k, v, err)
	}
	if _, _, err := ParseOverride("novalue"); err == nil {
		t.Error("accepted an override without =")
	}
}

func TestTelemetryKeys(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}
	cfg, _, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Addr != DefaultAdminAddr || cfg.Telemetry.Traces.Exporter != TraceExporterNone || cfg.Telemetry.Traces.Sampling != DefaultTraceSampling {
		t.Errorf("defaults: admin %q, traces %+v", cfg.Admin.Addr, cfg.Telemetry.Traces)
	}
	cfg, _, err = Load("", append(env, "PLATO_TELEMETRY__TRACES__SAMPLING=0.5", "PLATO_ADMIN__ADDR="), map[string]string{
		"telemetry.traces.exporter": "stdout", "telemetry.traces.file": "/tmp/spans.jsonl",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Telemetry.Traces.Sampling != 0.5 || cfg.Admin.Addr != "" || cfg.Telemetry.Traces.File != "/tmp/spans.jsonl" {
		t.Errorf("overrides: admin %q, traces %+v", cfg.Admin.Addr, cfg.Telemetry.Traces)
	}
	for _, tc := range []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"telemetry.traces.exporter": "jaeger"}, "telemetry.traces.exporter"},
		{map[string]string{"telemetry.traces.exporter": "stdout"}, "telemetry.traces.file"},
		{map[string]string{"telemetry.traces.exporter": "otlp"}, "telemetry.traces.endpoint"},
		{map[string]string{"telemetry.traces.sampling": "1.5"}, "telemetry.traces.sampling"},
		{map[string]string{"admin.addr": "nowhere"}, "admin.addr"},
	} {
		if _, _, err := Load("", env, tc.set); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.set, err, tc.want)
		}
	}
}

func TestBreakerKeys(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret, "PLATO_PIPELINE__BREAKER__PROBE_INTERVAL=250ms"}
	cfg, _, err := Load(writeFile(t, "pipeline: {breaker: {crashes: 3, window: 30s}}"), env, map[string]string{"pipeline.breaker.recover_after": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Pipeline.Breaker; b.Crashes != 3 || b.Window != 30*time.Second || b.ProbeInterval != 250*time.Millisecond || b.RecoverAfter != 2*time.Second {
		t.Errorf("file, env and override: %+v", b)
	}
	if b := Default().Pipeline.Breaker; b.Crashes != DefaultBreakerCrashes || b.Window != DefaultBreakerWindow ||
		b.ProbeInterval != DefaultBreakerProbeInterval || b.RecoverAfter != DefaultBreakerRecoverAfter {
		t.Errorf("defaults: %+v", b)
	}
	_, _, err = Load(writeFile(t, "pipeline: {breaker: {crashes: 0, window: 10ms, probe_interval: 1h, recover_after: 1ms}}"), env[:1], nil)
	for _, want := range []string{"pipeline.breaker.crashes", "pipeline.breaker.window", "pipeline.breaker.probe_interval", "pipeline.breaker.recover_after"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestNATSOutageKeys(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}
	cfg, _, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry.Replicas != 0 || cfg.IPConf.KeepStale != DefaultKeepStale || cfg.NATS.Embedded.Cluster != (NATSCluster{}) {
		t.Errorf("defaults: replicas %d, keep_stale %v, cluster %+v", cfg.Registry.Replicas, cfg.IPConf.KeepStale, cfg.NATS.Embedded.Cluster)
	}
	cfg, _, err = Load("", append(env,
		"PLATO_NATS__EMBEDDED__CLUSTER__NAME=plato", "PLATO_NATS__EMBEDDED__CLUSTER__ADDR=10.0.0.1:6222",
		"PLATO_NATS__EMBEDDED__CLUSTER__ROUTES=nats-route://10.0.0.2:6222, nats-route://10.0.0.3:6222",
	), map[string]string{"registry.replicas": "3", "ipconf.keep_stale": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.NATS.Embedded.Cluster; c.Name != "plato" || c.Addr != "10.0.0.1:6222" || !strings.Contains(c.Routes, "10.0.0.3") || cfg.Registry.Replicas != 3 || cfg.IPConf.KeepStale != 0 {
		t.Errorf("loaded: %+v, replicas %d, keep_stale %v", c, cfg.Registry.Replicas, cfg.IPConf.KeepStale)
	}
	for name, ov := range map[string]map[string]string{
		"nats.embedded.cluster.addr":   {"nats.embedded.cluster.name": "plato"},
		"nats.embedded.cluster.name":   {"nats.embedded.cluster.addr": "10.0.0.1:6222", "nats.embedded.cluster.routes": "nats-route://10.0.0.2:6222"},
		"nats.embedded.cluster.routes": {"nats.embedded.cluster.name": "plato", "nats.embedded.cluster.addr": "10.0.0.1:6222", "nats.embedded.cluster.routes": "nats://10.0.0.2:4222"},
		"registry.replicas":            {"registry.replicas": "7"},
		"ipconf.keep_stale":            {"ipconf.keep_stale": "-1s"},
	} {
		if _, _, err := Load("", env, ov); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: got %v, want an error naming %s", ov, err, name)
		}
	}
}

func TestBusinessEndpoints(t *testing.T) {
	const app = `keys: {k1: "a-key-of-16-bytes!"}, auth: {jwt: {secrets: {k1: "a-jwt-secret-of-at-least-32-bytes"}}}`
	load := func(t *testing.T, apps string, env ...string) (Config, error) {
		t.Helper()
		cfg, _, err := Load(writeFile(t, "auth: {token_secret: \""+secret+"\"}\napps: {"+apps+"}\n"), env, nil)
		return cfg, err
	}
	t.Run("one address, a list, a list from the environment", func(t *testing.T) {
		cfg, err := load(t, `a: {business: "127.0.0.1:7000", `+app+`},
b: {businesses: ["http://10.0.0.1:8000/plato", "https://biz.example.com/plato"], webhook_secret: "a-webhook-secret-16", `+app+`},
c: {`+app+`}`, "PLATO_APPS__C__BUSINESSES=10.0.0.1:7000,/run/biz.sock")
		if err != nil {
			t.Fatal(err)
		}
		if eps := cfg.Apps["a"].Endpoints(); len(eps) != 1 || eps[0] != "127.0.0.1:7000" {
			t.Errorf("a: %v", eps)
		}
		if eps := cfg.Apps["b"].Endpoints(); len(eps) != 2 || !IsWebhook(eps[1]) {
			t.Errorf("b: %v", eps)
		}
		if eps := cfg.Apps["c"].Endpoints(); len(eps) != 2 || eps[1] != "/run/biz.sock" {
			t.Errorf("c: %v", eps)
		}
	})
	for name, c := range map[string]struct{ apps, want string }{
		"both keys":        {`a: {business: "127.0.0.1:7000", businesses: ["127.0.0.1:7001"], ` + app + `}`, "apps.a.businesses: is set with apps.a.business"},
		"mixed kinds":      {`a: {businesses: ["127.0.0.1:7000", "http://127.0.0.1:8000"], webhook_secret: "a-webhook-secret-16", ` + app + `}`, "apps.a.businesses: mixes webhook URLs and Kitex addresses"},
		"no secret":        {`a: {business: "http://127.0.0.1:8000", ` + app + `}`, "apps.a.webhook_secret: is empty"},
		"short secret":     {`a: {business: "http://127.0.0.1:8000", webhook_secret: "short", ` + app + `}`, "apps.a.webhook_secret: must be at least 16 bytes"},
		"secret for kitex": {`a: {business: "127.0.0.1:7000", webhook_secret: "a-webhook-secret-16", ` + app + `}`, "apps.a.webhook_secret: is set but apps.a.business is not a webhook URL"},
		"other scheme":     {`a: {business: "grpc://127.0.0.1:7000", ` + app + `}`, "apps.a.business: \"grpc://127.0.0.1:7000\": a webhook URL starts with http://"},
		"query in url":     {`a: {businesses: ["http://h:1/x?y=1"], webhook_secret: "a-webhook-secret-16", ` + app + `}`, "apps.a.businesses[0]: \"http://h:1/x?y=1\": a webhook URL has no query"},
		"bad address":      {`a: {businesses: ["127.0.0.1:7000", "nowhere"], ` + app + `}`, "apps.a.businesses[1]: \"nowhere\" is not host:port"},
	} {
		if _, err := load(t, c.apps); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestUplinkAckWaitKey(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}
	if d := Default().State.UplinkAckWait; d != DefaultUplinkAckWait {
		t.Errorf("default %v", d)
	}
	cfg, _, err := Load(writeFile(t, "state: {uplink_ack_wait: 0s}"), env, map[string]string{})
	if err != nil || cfg.State.UplinkAckWait != 0 {
		t.Fatalf("0 turns it off: %v, %v", cfg.State.UplinkAckWait, err)
	}
	for _, bad := range []string{"state: {uplink_ack_wait: -1ms}", "state: {uplink_ack_wait: 2s}", "state: {uplink_ack_wait: 500ms, rpc_timeout: 100ms}"} {
		if _, _, err := Load(writeFile(t, bad), env, nil); err == nil || !strings.Contains(err.Error(), "state.uplink_ack_wait") {
			t.Errorf("%s: %v, want an error naming state.uplink_ack_wait", bad, err)
		}
	}
}
