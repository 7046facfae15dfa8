#!/usr/bin/env node
// A Node.js client of the acme contracts: it loads proto/ at run time (@grpc/proto-loader, no
// generated code) and calls the Python servers over @grpc/grpc-js, then prints one JSON object
// with every reply on stdout. tests/interop/test_node_client.py runs it against real processes.
//
//   node client.js --greeter 127.0.0.1:50051 --caller 127.0.0.1:50052 [--name Ada]
//
// Addresses may come from GREETER_ADDRESS / CALLER_ADDRESS instead; PROTO_DIR overrides the
// proto root (default: the repository's proto/). Exit code 0 when every call went as expected,
// 1 otherwise (the error is printed as JSON on stderr).
'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const DEADLINE_MS = 5000;

const { values: options } = parseArgs({
  options: {
    greeter: { type: 'string', default: process.env.GREETER_ADDRESS },
    caller: { type: 'string', default: process.env.CALLER_ADDRESS },
    name: { type: 'string', default: 'Ada' },
    proto: {
      type: 'string',
      default: process.env.PROTO_DIR || path.resolve(__dirname, '..', '..', '..', 'proto'),
    },
  },
});

function load(protoDir) {
  const definition = protoLoader.loadSync(
    ['acme/greeter/v1/greeter.proto', 'acme/caller/v1/caller.proto'],
    // keepCase: field names as in the .proto (served_by), like every other language's JSON.
    // The contracts import buf/validate/validate.proto, vendored beside proto/ (docs/contracts.md).
    {
      includeDirs: [protoDir, path.resolve(protoDir, '..', 'third_party', 'protovalidate')],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    },
  );
  return grpc.loadPackageDefinition(definition).acme;
}

function deadline() {
  return { deadline: Date.now() + DEADLINE_MS };
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, deadline(), (error, reply) => (error ? reject(error) : resolve(reply)));
  });
}

function serverStream(client, method, request) {
  return new Promise((resolve, reject) => {
    const replies = [];
    const call = client[method](request, deadline());
    call.on('data', (reply) => replies.push(reply));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
  });
}

// The status of a call expected to fail (code name, message), or an error if it succeeded.
async function failure(promise) {
  try {
    const reply = await promise;
    throw new Error(`expected the call to fail, got ${JSON.stringify(reply)}`);
  } catch (error) {
    if (error.code === undefined) throw error;
    return { code: grpc.status[error.code], details: error.details };
  }
}

async function main() {
  if (!options.greeter || !options.caller) {
    throw new Error('usage: client.js --greeter HOST:PORT --caller HOST:PORT [--name NAME]');
  }
  const acme = load(options.proto);
  const credentials = grpc.credentials.createInsecure();
  // Loopback calls never go through a proxy configured in the environment.
  const channelOptions = { 'grpc.enable_http_proxy': 0 };
  const greeter = new acme.greeter.v1.GreeterService(options.greeter, credentials, channelOptions);
  const caller = new acme.caller.v1.CallerService(options.caller, credentials, channelOptions);
  try {
    const result = {
      say_hello: await unary(greeter, 'SayHello', { name: options.name, language: 'fr' }),
      say_hello_languages: await serverStream(greeter, 'SayHelloLanguages', {
        name: options.name,
        languages: ['en', 'de', 'it'],
      }),
      introduce: await unary(caller, 'Introduce', { name: options.name }),
      say_hello_empty_name: await failure(unary(greeter, 'SayHello', { name: '   ' })),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    greeter.close();
    caller.close();
  }
}

main().catch((error) => {
  const report = { error: error.message, code: error.code, details: error.details };
  process.stderr.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
});
