"""Red Oxygen payloads from the provider's documents (../shared/providers/), shared by the tests that post them."""

from __future__ import annotations

from tests.conftest import SECRET

# The per-message shape of the send response (redoxygen-sendsms-json-api.txt).
MESSAGE_1 = {
    "SMSId": 123,
    "DestTn": "+61111222333",
    "Result": "0000",
    "ResultText": "Delivered",
    "Timestamp": "2024-09-20T04:39:13.819Z",
}
MESSAGE_2 = {
    "SMSId": 124,
    "DestTn": "+61111222334",
    "Result": "2015",
    "ResultText": "Invalid destination",
    "Timestamp": "2024-09-20T04:39:14.000Z",
}
REPLY = {
    "CustomerId": "CI00000001",
    "EmailId": "778899",
    "SmsId": "123",
    "UserEmail": "user@your_domain.com",
    "UserName": "Jo Sender",
    "DestTN": "61409000000",
    "DestName": "MyFirstCustomersName",
    "ReplyURL": f"https://hooks.example.com/redoxygen/reply?token={SECRET}",
    "ReplyText": "Yes, see you at 10",
}
# The whole send response (redoxygen-sendsms-json-api.txt, "SendSMS API Response": its example), for POST /api/v1/sent.
SENDSMS_RESPONSE = {
    "Name": "ROX_API_Response",
    "Result": "0000",
    "ResultText": "Success",
    "Version": "1.1",
    "Messages": {
        "Count": 2,
        "RequestId": "12092004391358440",
        "1": {
            "SMSId": 123,
            "DestTn": "+61111222333",
            "Result": "0000",
            "ResultText": "Queued",
            "Timestamp": "2024-09-20T04:39:13.819Z",
        },
        "2": {
            "SMSId": 124,
            "DestTn": "+61111222334",
            "Result": "0000",
            "ResultText": "Queued",
            "Timestamp": "2024-09-20T04:39:13.819Z",
        },
    },
}
