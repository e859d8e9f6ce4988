use super::*;
use proptest::prelude::*;

fn enroll() -> ClientRequest {
    ClientRequest::Enroll(EnrollRequest {
        invite: "tok".into(),
        id: "alice@firm-a".into(),
        name: "Alice".into(),
        age_recipient: "age1xyz".into(),
    })
}

#[test]
fn round_trip() {
    for req in [
        enroll(),
        ClientRequest::WhoAmI,
        ClientRequest::OrgCreate(OrgCreateRequest {
            id: "firm-a".into(),
            kind: OrgKind::Firm,
            recovery_recipient: None,
        }),
    ] {
        let frame = encode(&req).unwrap();
        assert_eq!(decode_frame::<ClientRequest>(&frame).unwrap(), req);
    }
}

#[test]
fn fixed_vectors_pin_kind_numbers() {
    // WhoAmI is kind 1: a one-byte body holding varint 1.
    assert_eq!(encode(&ClientRequest::WhoAmI).unwrap(), [0, 0, 0, 1, 1]);
    let err = ServerResponse::error(ErrorCode::Denied, "no");
    assert_eq!(encode(&err).unwrap(), [0, 0, 0, 5, 0, 2, 2, b'n', b'o']);
}

#[test]
fn trailing_bytes_refused() {
    let mut frame = encode(&ClientRequest::WhoAmI).unwrap();
    frame.push(0);
    frame[3] += 1;
    assert!(matches!(
        decode_frame::<ClientRequest>(&frame),
        Err(ProtoError::TrailingBytes(1))
    ));
}

#[test]
fn unknown_kind_reported() {
    assert!(matches!(
        decode::<ClientRequest>(&[99]),
        Err(ProtoError::UnknownKind(99))
    ));
    // A multi-byte varint kind is still recognised as a kind.
    assert!(matches!(
        decode::<ClientRequest>(&[0x80, 0x01]),
        Err(ProtoError::UnknownKind(128))
    ));
}

#[test]
fn oversized_header_refused_before_allocation() {
    assert!(matches!(
        decode_header(((MAX_FRAME + 1) as u32).to_be_bytes()),
        Err(ProtoError::TooLarge(_))
    ));
    assert!(matches!(
        decode_header([0xff; 4]),
        Err(ProtoError::TooLarge(0xffff_ffff))
    ));
    assert_eq!(
        decode_header((MAX_FRAME as u32).to_be_bytes()).unwrap(),
        MAX_FRAME
    );
}

#[test]
fn oversized_message_not_encoded() {
    let req = ClientRequest::Enroll(EnrollRequest {
        invite: "x".repeat(MAX_FRAME),
        id: String::new(),
        name: String::new(),
        age_recipient: String::new(),
    });
    assert!(matches!(encode(&req), Err(ProtoError::TooLarge(_))));
}

#[test]
fn short_frame_refused() {
    assert!(decode_frame::<ClientRequest>(&[0, 0]).is_err());
    assert!(decode_frame::<ClientRequest>(&[0, 0, 0, 2, 1]).is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<ClientRequest>(&body);
        let _ = decode::<ServerResponse>(&body);
    }

    #[test]
    fn enroll_round_trips(invite in ".{0,64}", id in ".{0,64}", name in ".{0,64}") {
        let req = ClientRequest::Enroll(EnrollRequest { invite, id, name, age_recipient: "age1".into() });
        let frame = encode(&req).unwrap();
        prop_assert_eq!(decode_frame::<ClientRequest>(&frame).unwrap(), req);
    }
}
