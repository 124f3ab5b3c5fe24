#!/usr/bin/env python3
"""Connects with paho-mqtt over MQTT 5, prints "connected" once the CONNACK arrived, then waits
(up to 30 s) for the broker's DISCONNECT and prints it as one JSON line:
{"reason": <reason code>, "server_reference": <Server Reference or null>}.

Usage: disconnect.py PORT CLIENT_ID
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt


def main() -> int:
    port, client_id = int(sys.argv[1]), sys.argv[2]
    done = threading.Event()
    out = {"reason": None, "server_reference": None}

    def on_connect(_client, _userdata, _flags, _reason_code, _properties):
        print("connected", flush=True)

    def on_disconnect(_client, _userdata, _flags, reason_code, properties):
        out["reason"] = reason_code.value
        out["server_reference"] = getattr(properties, "ServerReference", None)
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    client.loop_start()
    answered = done.wait(30)
    client.loop_stop()
    print(json.dumps(out), flush=True)
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
