package qosroutestage

import (
	"fmt"

	"github.com/platoim/plato/sdk/stage"
)

// DefaultBroadcastMinMembers is Config.BroadcastMinMembers' default.
const DefaultBroadcastMinMembers = 200

// The QoS names the config uses (stage.QoS.String spells them the same way).
const (
	AtLeastOnce = "at_least_once"
	AtMostOnce  = "at_most_once"
)

// Config is the stage's config block in the pipeline YAML (keys in brackets). Unknown keys are an
// error.
type Config struct {
	// BroadcastMinMembers (broadcast_min_members) is the smallest session, in members on this
	// state server, pushed by broadcast; smaller sessions, and pushes without a session, go
	// direct. At least 1. Default DefaultBroadcastMinMembers (200).
	BroadcastMinMembers int
	// QoS (qos) is the QoS of a direct push that asked for none: at_least_once (the default) or
	// at_most_once.
	QoS stage.QoS
	// BroadcastQoS (broadcast_qos) is the QoS of a broadcast push that asked for none:
	// at_most_once (the default) or at_least_once.
	BroadcastQoS stage.QoS
	// HonorRequest (honor_request) lets a QoS the business asked for win over QoS and
	// BroadcastQoS. Default true.
	HonorRequest bool
}

// rawConfig is Config as written; pointers tell an absent key from a zero value.
type rawConfig struct {
	BroadcastMinMembers *int   `json:"broadcast_min_members"`
	QoS                 string `json:"qos"`
	BroadcastQoS        string `json:"broadcast_qos"`
	HonorRequest        *bool  `json:"honor_request"`
}

// parseConfig decodes raw, fills in the defaults and validates the result.
func parseConfig(raw []byte) (Config, error) {
	var r rawConfig
	if err := stage.DecodeConfig(raw, &r); err != nil {
		return Config{}, fmt.Errorf("qosroute: %w", err)
	}
	c := Config{BroadcastMinMembers: DefaultBroadcastMinMembers, HonorRequest: true}
	if r.BroadcastMinMembers != nil {
		if *r.BroadcastMinMembers < 1 {
			return c, fmt.Errorf("qosroute: broadcast_min_members: must be at least 1, got %d (to never broadcast, set it above any session's size)", *r.BroadcastMinMembers)
		}
		c.BroadcastMinMembers = *r.BroadcastMinMembers
	}
	var err error
	if c.QoS, err = parseQoS("qos", r.QoS, stage.AtLeastOnce); err != nil {
		return c, err
	}
	if c.BroadcastQoS, err = parseQoS("broadcast_qos", r.BroadcastQoS, stage.AtMostOnce); err != nil {
		return c, err
	}
	if r.HonorRequest != nil {
		c.HonorRequest = *r.HonorRequest
	}
	return c, nil
}

// parseQoS reads the QoS named s for key, def when s is empty.
func parseQoS(key, s string, def stage.QoS) (stage.QoS, error) {
	switch s {
	case "":
		return def, nil
	case AtLeastOnce:
		return stage.AtLeastOnce, nil
	case AtMostOnce:
		return stage.AtMostOnce, nil
	}
	return 0, fmt.Errorf("qosroute: %s: %q is neither %q nor %q", key, s, AtLeastOnce, AtMostOnce)
}
