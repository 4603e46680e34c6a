# What each command prints is under it (curl -i prints a few more headers than shown).

# Creates the order. The client makes up the key, once per order (a UUID, say).
curl -i http://localhost:3000/orders -H 'Idempotency-Key: order-7f3a' -H 'Content-Type: application/json' -d '{"sku":"widget","quantity":2}'
# HTTP/1.1 201 Created
# {"id":1,"sku":"widget","quantity":2}

# The same request again, as a client retries after a timeout: the first answer, and no second order.
curl -i http://localhost:3000/orders -H 'Idempotency-Key: order-7f3a' -H 'Content-Type: application/json' -d '{"sku":"widget","quantity":2}'
# HTTP/1.1 201 Created
# idempotent-replayed: true
# {"id":1,"sku":"widget","quantity":2}

# The same key with a different body is refused: the client reused a key by mistake.
curl -i http://localhost:3000/orders -H 'Idempotency-Key: order-7f3a' -H 'Content-Type: application/json' -d '{"sku":"widget","quantity":3}'
# HTTP/1.1 422 Unprocessable Entity
# Content-Type: application/problem+json; charset=utf-8
# {"type":"urn:nestjs-idempotency:idempotency-key-reused","title":"Idempotency key reused","status":422,"detail":"This key was already used with a different request. Use a new key for a new request.","code":"IDEMPOTENCY_KEY_REUSED"}
