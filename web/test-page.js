// The browser test page (bundled by the tests with esbuild, tests/src/browser.rs): calls the
// tests' Echo service through a proxy's web listener with the official gRPC-Web client
// (binary and text modes) and with Connect's gRPC-Web transport, then posts what it saw to
// its own server's /report as JSON, which the test asserts.
//
// The page's URL says where to call and what to run:
//   ?target=http://127.0.0.1:PORT&run=all      every scenario below
//   ?target=...&run=refused                    one call, expected to be refused by CORS

import { GrpcWebClientBase } from "grpc-web";
import { createPromiseClient, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Echo, EchoRequest, SERVER_STREAM, UNARY } from "./echo.js";

const params = new URLSearchParams(location.search);
const target = params.get("target");
const now = () => Math.round(performance.now());

/// A unary call with the official client: { instance } or { code, message }.
function webUnary(format, request, metadata = {}) {
  const client = new GrpcWebClientBase({ format });
  return client
    .unaryCall(`${target}/weft.test.Echo/Unary`, request, metadata, UNARY)
    .then((reply) => ({ instance: reply.instance }))
    .catch((err) => ({ code: err.code, message: err.message }));
}

/// A server stream with the official client: each message's instance and arrival time,
/// the end's time, and the status.
function webStream(format, request) {
  return new Promise((resolve) => {
    const seen = { instances: [], times: [], start: now() };
    const client = new GrpcWebClientBase({ format });
    const stream = client.serverStreaming(
      `${target}/weft.test.Echo/ServerStream`,
      request,
      {},
      SERVER_STREAM,
    );
    stream.on("data", (reply) => {
      seen.instances.push(reply.instance);
      seen.times.push(now());
    });
    stream.on("status", (status) => {
      seen.code = status.code;
    });
    stream.on("error", (err) => {
      seen.code = err.code;
      seen.message = err.message;
      seen.end = now();
      resolve(seen);
    });
    stream.on("end", () => {
      seen.end = now();
      resolve(seen);
    });
  });
}

const connect = createPromiseClient(
  Echo,
  createGrpcWebTransport({ baseUrl: target, useBinaryFormat: true }),
);

async function connectUnary(request, options = {}) {
  try {
    const reply = await connect.unary(request, options);
    return { instance: reply.instance };
  } catch (err) {
    const error = ConnectError.from(err);
    return { code: error.code, message: error.rawMessage };
  }
}

async function connectStream(request) {
  const seen = { instances: [], times: [], start: now() };
  try {
    for await (const reply of connect.serverStream(request)) {
      seen.instances.push(reply.instance);
      seen.times.push(now());
    }
    seen.code = 0;
  } catch (err) {
    const error = ConnectError.from(err);
    seen.code = error.code;
    seen.message = error.rawMessage;
  }
  seen.end = now();
  return seen;
}

async function all() {
  const hello = new EchoRequest({ message: "hi" });
  const streaming = new EchoRequest({ message: "s", count: 3, intervalMs: 300 });
  const slow = new EchoRequest({ message: "slow", delayMs: 3000 });
  const fault = { "x-fault": "yes" };
  return {
    web_binary_unary: await webUnary("binary", hello),
    web_text_unary: await webUnary("text", hello),
    web_text_stream: await webStream("text", streaming),
    web_fault: await webUnary("text", hello, fault),
    web_deadline: await webUnary("text", slow, { deadline: String(Date.now() + 300) }),
    connect_unary: await connectUnary(hello),
    connect_stream: await connectStream(streaming),
    connect_fault: await connectUnary(hello, { headers: fault }),
    connect_deadline: await connectUnary(slow, { timeoutMs: 300 }),
  };
}

async function refused() {
  return { web_binary_unary: await webUnary("binary", new EchoRequest({ message: "hi" })) };
}

async function main() {
  let results;
  try {
    results = params.get("run") === "refused" ? await refused() : await all();
  } catch (err) {
    results = { page_error: String(err && err.stack ? err.stack : err) };
  }
  await fetch("/report", { method: "POST", body: JSON.stringify(results) });
  document.title = "done";
}

main();
