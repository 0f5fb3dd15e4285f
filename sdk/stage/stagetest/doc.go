// Package stagetest lets a stage's author unit-test it without building a binary, yet through
// the same gRPC adapters, over a real (in-memory) gRPC connection, that a plugin uses in
// production: a marshalling surprise shows up in the test, not in the state server.
//
//	func TestMyStage(t *testing.T) {
//		h := stagetest.New(t, &myStage{}, stagetest.Options{App: "demo", Config: map[string]any{"limit": 3}})
//		c := h.Conn("device-1")
//		if r := h.Login(c, "token"); r.Verdict != stage.Continue {
//			t.Fatalf("login: %+v", r)
//		}
//		h.Uplink(c, 1, []byte("hello"))
//		if got := h.Host.Pushes(); len(got) != 1 { ... }
//	}
//
// The stage talks to Harness.Host, a recording fake of stage.Host: it keeps pushes, resends,
// undelivered reports, session bindings, the connections' joined sessions (Host.Joins, Host.Joined;
// Host.SetSessions or Host.SessionsFunc answer Host.Sessions), pending timers (fire one with
// Harness.FireTimer) and state (an in-memory store whose TTLs follow a fake clock, moved by
// Host.Advance). Harness.Route sends a route event (a business push before it fans out).
//
// go-plugin's broker needs a real plugin process, so the harness serves the Host service on a
// second in-memory connection, through stage.GRPCPlugin's DialHost and ServeHost hooks.
package stagetest
