package apps

import (
	"strings"
	"testing"

	"github.com/platoim/plato/internal/config"
)

func TestLiveAppsOverlayTheFile(t *testing.T) {
	file := map[string]config.App{
		"chat": config.SimpleApp("file-chat-key-16-bytes", secret, "127.0.0.1:1"),
		"game": config.SimpleApp("file-game-key-16-bytes", secret, ""),
	}
	table, err := New(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A live app of a new ID is added; one of a file app's ID replaces it whole.
	if err := table.PutLive("news", config.SimpleApp("live-news-key-16-bytes", secret, "")); err != nil {
		t.Fatal(err)
	}
	if err := table.PutLive("chat", config.SimpleApp("live-chat-key-16-bytes", secret, "127.0.0.1:2")); err != nil {
		t.Fatal(err)
	}
	chat := table.Get("chat")
	if len(chat.Endpoints) != 1 || chat.Endpoints[0] != "127.0.0.1:2" || !chat.CheckKey("live-chat-key-16-bytes") || chat.CheckKey("file-chat-key-16-bytes") {
		t.Fatalf("the live chat did not replace the file's whole: %+v", chat)
	}
	if !table.IsLive("chat") || !table.IsLive("news") || table.IsLive("game") {
		t.Error("IsLive wrong")
	}
	if got := strings.Join(table.IDs(), ","); got != "chat,game,news" {
		t.Fatalf("IDs %s", got)
	}
	// An unchanged app keeps its compiled form across a change of another.
	game := table.Get("game")
	if err := table.PutLive("news", config.SimpleApp("live-news-key2-16-bytes", secret, "")); err != nil {
		t.Fatal(err)
	}
	if table.Get("game") != game {
		t.Error("an unchanged app was compiled again")
	}
	// Setting an app again compiles it again (a PEM file its public_keys name is read again).
	news := table.Get("news")
	if err := table.PutLive("news", config.SimpleApp("live-news-key2-16-bytes", secret, "")); err != nil {
		t.Fatal(err)
	}
	if table.Get("news") == news || table.Get("game") != game {
		t.Error("setting an app again did not compile it again, or compiled another")
	}

	// A file reload keeps the live layer over it.
	file2 := map[string]config.App{"chat": file["chat"]}
	if err := table.Replace(file2, Options{}); err != nil {
		t.Fatal(err)
	}
	if table.Get("game") != nil || !table.Get("chat").CheckKey("live-chat-key-16-bytes") || table.Get("news") == nil {
		t.Fatalf("after a file reload: %v", table.IDs())
	}

	// Deleting the live chat brings the file's back; deleting news removes it.
	if ok, err := table.DeleteLive("chat"); !ok || err != nil {
		t.Fatalf("DeleteLive chat: %v %v", ok, err)
	}
	if !table.Get("chat").CheckKey("file-chat-key-16-bytes") || table.IsLive("chat") {
		t.Error("the file's chat did not come back")
	}
	if ok, _ := table.DeleteLive("news"); !ok || table.Get("news") != nil {
		t.Error("news still served")
	}
	if ok, _ := table.DeleteLive("news"); ok {
		t.Error("deleting a live app twice reported a delete")
	}
}

func TestABadLiveAppChangesNothing(t *testing.T) {
	table, err := New(map[string]config.App{"chat": config.SimpleApp("file-chat-key-16-bytes", secret, "")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := table.PutLive("news", config.SimpleApp("live-news-key-16-bytes", secret, "")); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]config.App{
		"short key":   config.SimpleApp("short", secret, ""),
		"no auth":     {Keys: map[string]string{"k": "live-news-key-16-bytes"}},
		"bad pem":     {Keys: map[string]string{"k": "live-news-key-16-bytes"}, Auth: config.AppAuth{JWT: config.JWTAuth{PublicKeys: map[string]string{"k": "not a key"}}}},
		"bad address": config.SimpleApp("live-news-key-16-bytes", secret, "no port"),
	} {
		err := table.PutLive("news", a)
		if err == nil || !strings.Contains(err.Error(), "apps.news") {
			t.Errorf("%s: PutLive = %v, want an error naming apps.news", name, err)
		}
	}
	if !table.Get("news").CheckKey("live-news-key-16-bytes") || table.Get("chat") == nil {
		t.Fatal("a refused live app changed the table")
	}
	if err := table.PutLive("Bad.ID", config.SimpleApp("live-news-key-16-bytes", secret, "")); err == nil {
		t.Error("an invalid app ID was accepted")
	}
}

func TestSetLiveReplacesTheLayerAndKeepsLastGood(t *testing.T) {
	table, err := New(map[string]config.App{"chat": config.SimpleApp("file-chat-key-16-bytes", secret, "")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := table.PutLive(id, config.SimpleApp(id+"-live-key-of-16-bytes", secret, "")); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh read of the bucket: a is gone, b changed, c's value is unusable (keep), d arrives
	// bad, e is new.
	changed, bad := table.SetLive(map[string]config.App{
		"b": config.SimpleApp("b-new-key-of-16-bytes", secret, ""),
		"d": config.SimpleApp("short", secret, ""),
		"e": config.SimpleApp("e-live-key-of-16-bytes", secret, ""),
	}, []string{"c", "x"})
	if !changed {
		t.Error("SetLive reported no change")
	}
	if len(bad) != 1 || bad["d"] == nil {
		t.Errorf("bad = %v, want d's error", bad)
	}
	if got := strings.Join(table.IDs(), ","); got != "b,c,chat,e" {
		t.Fatalf("IDs %s, want b,c,chat,e", got)
	}
	if !table.Get("b").CheckKey("b-new-key-of-16-bytes") || !table.Get("c").CheckKey("c-live-key-of-16-bytes") {
		t.Error("b not changed, or c lost its last good settings")
	}
	// The same read again changes nothing.
	changed, _ = table.SetLive(map[string]config.App{
		"b": config.SimpleApp("b-new-key-of-16-bytes", secret, ""),
		"e": config.SimpleApp("e-live-key-of-16-bytes", secret, ""),
	}, []string{"c"})
	if changed {
		t.Error("an identical read reported a change")
	}
	// An empty bucket leaves the file's apps.
	if changed, _ = table.SetLive(nil, nil); !changed || strings.Join(table.IDs(), ",") != "chat" {
		t.Errorf("after an empty read: %v", table.IDs())
	}
}
