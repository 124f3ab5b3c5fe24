# A paho-mqtt client over WebSocket for e2e/tests/websocket.rs: subscribes to in/<id>, prints
# "ready" once subscribed, answers the first message with the same payload on out/<id> (QoS 1),
# and exits 0 once that is acknowledged. Any failure exits non-zero; a watchdog ends it after 20 s.
# Usage: paho_ws.py PORT PATH VERSION(3|5) CLIENT_ID [CA [CERT KEY]]  (a CA means wss)
import os
import sys
import threading

import paho.mqtt.client as mqtt

port, path, version, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ca, cert, key = (sys.argv[5:8] + [None, None, None])[:3]
threading.Timer(20, lambda: os._exit(3)).start()

client = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2,
    client_id=cid,
    transport="websockets",
    protocol=mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311,
)
client.ws_set_options(path=path)
if ca:
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)


def on_connect(c, _userdata, _flags, reason, _props):
    if reason.is_failure:
        print(f"refused: {reason}", flush=True)
        os._exit(2)
    c.subscribe(f"in/{cid}", qos=1)


def on_subscribe(_c, _userdata, _mid, reasons, _props):
    print("ready" if not reasons[0].is_failure else f"subscribe refused: {reasons[0]}", flush=True)


def on_message(c, _userdata, msg):
    c.publish(f"out/{cid}", msg.payload, qos=1)


def on_publish(c, _userdata, _mid, _reason, _props):
    c.disconnect()


client.on_connect, client.on_subscribe = on_connect, on_subscribe
client.on_message, client.on_publish = on_message, on_publish
try:
    client.connect("127.0.0.1", port, keepalive=30)
except Exception as e:  # refused upgrades and TLS handshakes are what some tests expect
    print(f"connect failed: {e}", flush=True)
    os._exit(1)
client.loop_forever()
os._exit(0)
