"""Lets tooz 3.1's etcd3+http driver start on etcd3gw 2.0.0.

tooz passes api_path= to etcd3gw.client(), which etcd3gw 2.0.0's client()
does not accept (its Etcd3Client does). Python imports this module at
start-up when its directory is on PYTHONPATH; the etcd3+http benchmark
puts it there for tooz's process only.
"""

try:
    import etcd3gw
    from etcd3gw.client import Etcd3Client
except ImportError:
    etcd3gw = None

if etcd3gw is not None:
    def client(host="localhost", port=2379, ca_cert=None, cert_key=None,
               cert_cert=None, timeout=None, protocol="http",
               api_path="/v3alpha/"):
        return Etcd3Client(host=host, port=port, protocol=protocol,
                           ca_cert=ca_cert, cert_key=cert_key,
                           cert_cert=cert_cert, timeout=timeout,
                           api_path=api_path)

    etcd3gw.client = client
