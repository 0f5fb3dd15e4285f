package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/platoim/plato/internal/credential"
)

// runToken dispatches `plato token <sub>`.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "mint" {
		fmt.Fprintln(stderr, "Usage: plato token mint --app APP --did DID --uid UID [flags]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("the only token subcommand is mint")
	}
	fs := flag.NewFlagSet("plato token mint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: plato token mint --app APP --did DID --uid UID [flags]\n\n"+
			"Prints a device credential for trying things by hand: a JWT signed with the app's HS256 secret\n"+
			"from the configuration (apps.<app>.auth.jwt.secrets) or NATS KV (plato apps set), as the app's backend would issue it.\n"+
			"Give it to ipconf: curl -H \"Authorization: Bearer $(plato token mint ...)\" ...\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cf commonFlags
	cf.register(fs, "")
	app := fs.String("app", "demo", "app ID")
	did := fs.String("did", "", "the device's did (required)")
	uid := fs.String("uid", "", "the user's uid (default: the did)")
	kid := fs.String("kid", "", "which of the app's secrets to sign with (default: the first, by name)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the credential is valid")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *did == "" {
		return errors.New("--did is required")
	}
	if *uid == "" {
		*uid = *did
	}
	cfg, err := cf.load("")
	if err != nil {
		return err
	}
	// An app in NATS KV replaces the file's, as on the servers; without NATS, the file's.
	a, ok := liveApp(ctx, cfg, *app)
	if !ok {
		a, ok = cfg.Apps[*app]
	}
	if !ok {
		return fmt.Errorf("app %q is neither in the configuration (apps) nor in NATS KV (plato apps list)", *app)
	}
	secrets := a.Auth.JWT.Secrets
	if len(secrets) == 0 {
		return fmt.Errorf("app %q has no HS256 secret (apps.%s.auth.jwt.secrets): its backend signs with a private key only it holds", *app, *app)
	}
	if *kid == "" {
		*kid = slices.Sorted(maps.Keys(secrets))[0]
	}
	secret, ok := secrets[*kid]
	if !ok {
		return fmt.Errorf("app %q has no secret named %q", *app, *kid)
	}
	c, err := credential.MintHS256(*app, *kid, secret, *did, *uid, time.Now(), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, c)
	return nil
}
