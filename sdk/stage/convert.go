package stage

import (
	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// Conversions for the Host service's messages (the Process stream has its own codec: wire.go).

func connToPB(c Conn) *pb.Conn {
	return &pb.Conn{AppId: c.AppID, Did: c.DID, Uid: c.UID, ConnId: c.ConnID, GatewayId: c.GatewayID, RemoteAddr: c.RemoteAddr}
}

func connFromPB(c *pb.Conn) Conn {
	return Conn{AppID: c.GetAppId(), DID: c.GetDid(), UID: c.GetUid(), ConnID: c.GetConnId(),
		GatewayID: c.GetGatewayId(), RemoteAddr: c.GetRemoteAddr()}
}
