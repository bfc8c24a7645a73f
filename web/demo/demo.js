// The local mesh's browser demo (scripts/mesh serves it): calls greeter's Echo service
// through the client proxy's web listener with the official gRPC-Web client, in text mode,
// so server streaming shows each message as it arrives.

import { GrpcWebClientBase } from "grpc-web";
import { EchoRequest, SERVER_STREAM, UNARY } from "../echo.js";

const target = document.body.dataset.target;
const client = new GrpcWebClientBase({ format: "text" });
const log = document.getElementById("log");

function show(text, kind = "") {
  const line = document.createElement("li");
  line.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  line.className = kind;
  log.prepend(line);
}

function failed(err) {
  show(`error ${err.code}: ${err.message}`, "error");
}

document.getElementById("unary").onclick = () => {
  const message = document.getElementById("message").value;
  client
    .unaryCall(`${target}/weft.test.Echo/Unary`, new EchoRequest({ message }), {}, UNARY)
    .then((reply) => show(`Unary → "${reply.message}" from ${reply.instance}`))
    .catch(failed);
};

document.getElementById("stream").onclick = () => {
  const message = document.getElementById("message").value;
  // The demo route gives each try 500 ms (perTryTimeout), which bounds a stream too.
  const request = new EchoRequest({ message, count: 4, intervalMs: 100 });
  const stream = client.serverStreaming(
    `${target}/weft.test.Echo/ServerStream`,
    request,
    {},
    SERVER_STREAM,
  );
  stream.on("data", (reply) => show(`ServerStream → "${reply.message}" from ${reply.instance}`));
  stream.on("error", failed);
  stream.on("end", () => show("ServerStream ended"));
};
