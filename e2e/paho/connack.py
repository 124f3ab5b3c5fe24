#!/usr/bin/env python3
"""Connects with paho-mqtt over MQTT 5 and prints the broker's CONNACK as one JSON line:
{"reason": <reason code>, "reason_string": <Reason String or null>}; "reason" is null when no
CONNACK arrived within 10 s (exit status 1).

Usage: connack.py PORT CLIENT_ID [--auth-method METHOD] [--max-packet BYTES]
"""
import argparse
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("client_id")
    ap.add_argument("--auth-method")
    ap.add_argument("--max-packet", type=int)
    args = ap.parse_args()

    done = threading.Event()
    out = {"reason": None, "reason_string": None}

    def on_connect(_client, _userdata, _flags, reason_code, properties):
        out["reason"] = reason_code.value
        out["reason_string"] = getattr(properties, "ReasonString", None)
        done.set()

    props = Properties(PacketTypes.CONNECT)
    if args.auth_method:
        props.AuthenticationMethod = args.auth_method
    if args.max_packet:
        props.MaximumPacketSize = args.max_packet
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.connect("127.0.0.1", args.port, keepalive=30, clean_start=True, properties=props)
    client.loop_start()
    answered = done.wait(10)
    client.loop_stop()
    print(json.dumps(out))
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
